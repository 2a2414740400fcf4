"""Argument checks: one rule for an integer, a real number in an interval and a choice from a list,
each raising a ``ValueError`` that names the argument, the value given and what is allowed.

Booleans are refused where a number is asked for (``True`` is an ``int`` to Python, never a
sensible epoch count or rate); numpy scalars are accepted and returned as Python ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral, Real

__all__ = ["integer", "one_of", "real"]


def integer(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer in [``low``, ``high``] (either bound optional).

    A float with an integral value (``3.0``, as YAML or papermill may pass it) counts as an integer.

    >>> integer("max_epochs", 3.0, low=0)
    3
    """
    integral = isinstance(value, Integral) or (isinstance(value, Real) and float(value).is_integer())
    if isinstance(value, bool) or not integral or (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{_bounds(low, high, False, False)}, got {value!r}.")
    return int(value)


def real(name: str, value, low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a ``float`` if it is a real number in the interval from ``low`` to ``high``
    (closed unless ``low_open`` / ``high_open``; either bound optional).

    >>> real("target_accuracy", 1, 0, 1, low_open=True)
    1.0
    """
    number = not isinstance(value, bool) and isinstance(value, Real) and value == value  # NaN is not
    below = number and low is not None and (value <= low if low_open else value < low)
    above = number and high is not None and (value >= high if high_open else value > high)
    if not number or below or above:
        raise ValueError(f"{name} must be a number{_bounds(low, high, low_open, high_open)}, got {value!r}.")
    return float(value)


def one_of(name: str, value, allowed: Iterable):
    """``value`` if it is one of ``allowed``, else a ValueError listing them.

    >>> one_of("optimizer", "sgd", ("sgd", "adam"))
    'sgd'
    """
    allowed = list(allowed)
    try:
        known = value in allowed
    except TypeError:  # an unhashable value against a dict's keys
        known = False
    if not known:
        raise ValueError(f"Unknown {name} {value!r}; choose one of: {', '.join(map(str, allowed))}.")
    return value


def _bounds(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""
