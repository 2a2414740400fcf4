"""The one artifact store: results keyed by their recipe, written atomically, checked when read.

Everything the package caches (a training run, an evaluation table, later a relabelling) is
identified by a *recipe*: a mapping of the settings that determine it. :func:`recipe_key` hashes
the recipe into a short folder or file name:

- values are normalized first (``1`` and ``1.0`` are one number, ``numpy.int64(0)`` is ``0``,
  tuples are lists), so equal recipes always get equal keys;
- only fields that differ from their defaults are hashed, so adding a field with a default to a
  recipe keeps every existing key;
- :data:`CACHE_VERSION` is hashed with them: bumping it retires every entry at once, which is
  what to do when the code that computes a cached result changes what it computes.

:func:`atomic_write` is the only way anything is written: into a uniquely named temporary
sibling, renamed into place in one step. An interrupted write leaves nothing a later read would
trust, and concurrent writers (sweep shards) never share a temporary name. What a read finds is
checked by its owner (a run's stored labels against the labels the current code derives, see
:mod:`memnotebooks.runs`); a mismatch raises :class:`StaleArtifactError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Mapping
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "CACHE_VERSION",
    "StaleArtifactError",
    "atomic_write",
    "cached_table",
    "default_artifacts_dir",
    "git_commit",
    "is_cached",
    "normalize",
    "recipe_key",
    "table_folder",
]

CACHE_VERSION = 4
"""Hashed into every key. Bump it when a change to the code changes what a cached result holds."""


class StaleArtifactError(RuntimeError):
    """A stored artifact no longer matches what the current code derives for its recipe."""


def default_artifacts_dir() -> Path:
    """``$MEMNOTEBOOKS_ARTIFACTS``, else ``~/.cache/memnotebooks/artifacts``."""
    return Path(os.environ.get("MEMNOTEBOOKS_ARTIFACTS", Path.home() / ".cache" / "memnotebooks" / "artifacts"))


def git_commit() -> str | None:
    """The git commit of the package's checkout (for provenance records), with ``-dirty``
    appended when tracked files differ from it, or ``None`` outside a checkout."""
    here = Path(__file__).parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=here).stdout.strip()
    if not head:
        return None
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=here).stdout.strip()
    return head + ("-dirty" if changed else "")


def normalize(value):
    """``value`` in a canonical JSON-ready form: numbers as float (int for integral non-bool
    values that are not floats), numpy scalars as Python ones, sequences as lists, mappings with
    sorted string keys.

    >>> normalize({"lr": 1, "seed": np.int64(0), "epochs": (0, 2)})
    {'epochs': [0, 2], 'lr': 1, 'seed': 0}
    >>> normalize(1.0) == normalize(1)
    True
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        number = float(value)
        # 1.0 and 1 name the same number: one key for both.
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if isinstance(value, (str, type(None))):
        return value
    if isinstance(value, Mapping):
        return {str(k): normalize(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [normalize(v) for v in value]
    raise TypeError(f"Cannot use {value!r} of type {type(value).__name__} in a cache key.")


def recipe_key(kind: str, recipe: Mapping, defaults: Mapping | None = None) -> str:
    """A 16-hex-digit key for a result of ``kind`` made by ``recipe``.

    Parameters
    ----------
    kind : str
        What is keyed (``"run"``, ``"evaluation"``, ...): equal recipes of different kinds differ.
    recipe : mapping
        The settings that determine the result.
    defaults : mapping, optional
        Default values of the recipe's fields; a field equal to its default is left out, so a
        new field with a default does not change existing keys.

    >>> recipe_key("run", {"seed": 0, "lr": 1}) == recipe_key("run", {"lr": 1.0, "seed": np.int64(0)})
    True
    >>> recipe_key("run", {"seed": 0, "new": None}, defaults={"new": None}) == recipe_key("run", {"seed": 0})
    True
    """
    recipe, defaults = normalize(recipe), normalize(defaults or {})
    kept = {name: value for name, value in recipe.items() if name not in defaults or defaults[name] != value}
    text = json.dumps({"cache_version": CACHE_VERSION, "kind": kind, "recipe": kept}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Create ``path`` (a file or a folder) all at once.

    ``write(tmp)`` creates the content at ``tmp``, a unique temporary sibling of ``path``; it is
    then renamed to ``path``. A file replaces any older one. A folder that another writer
    completed first is kept and this one discarded (both came from the same recipe). On any error
    the temporary is removed and the error raised.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")  # keeps the suffix (papermill checks it)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError:
        # os.replace cannot put a folder over a non-empty one: another writer finished first.
        finished_by_another = tmp.is_dir() and path.is_dir() and any(path.iterdir())
        _remove(tmp)
        if not finished_by_another:
            raise
    except BaseException:
        _remove(tmp)
        raise
    return path


def cached_table(directory: str | os.PathLike, kind: str, recipe: Mapping, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """The table that ``recipe`` makes, from ``directory`` or by calling ``compute()`` once.

    The table lives in ``directory/<kind>-<key>/`` (key: :func:`recipe_key`) as ``table.csv``
    beside ``recipe.json``, which holds the recipe in words and which columns are text (read back
    as text, so a label set named ``"true"`` does not become a boolean). The folder is written
    with :func:`atomic_write`.

    Parameters
    ----------
    directory : path
        Where the table is kept, e.g. the run's folder.
    kind : str
        What the table is (``"evaluation"``, ...).
    recipe : mapping
        Everything that determines the table.
    compute : callable
        Returns the table, or ``(table, files)`` where ``files`` maps a file name to a function
        that writes that file at the path it is given (e.g. model weights that go with the
        table: they are written into the same folder, in the same atomic step, and found with
        :func:`table_folder`). Called only when the table is not stored yet.
    """
    folder = table_folder(directory, kind, recipe)
    if not is_cached(directory, kind, recipe):
        computed = compute()
        table, files = computed if isinstance(computed, tuple) else (computed, {})
        text_columns = [str(c) for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]

        def write(tmp: Path) -> None:
            tmp.mkdir()
            for name, write_file in files.items():
                write_file(tmp / name)
            table.to_csv(tmp / "table.csv", index=False)
            metadata = {"kind": kind, "cache_version": CACHE_VERSION, "recipe": normalize(recipe), "text_columns": text_columns}
            (tmp / "recipe.json").write_text(json.dumps(metadata, indent=2))

        atomic_write(folder, write)
    text_columns = json.loads((folder / "recipe.json").read_text())["text_columns"]
    return pd.read_csv(folder / "table.csv", dtype={name: str for name in text_columns})


def is_cached(directory: str | os.PathLike, kind: str, recipe: Mapping) -> bool:
    """Whether :func:`cached_table` would read the table rather than compute it."""
    return (table_folder(directory, kind, recipe) / "table.csv").is_file()


def table_folder(directory: str | os.PathLike, kind: str, recipe: Mapping) -> Path:
    """The folder where :func:`cached_table` keeps the table of ``recipe`` (and its files):
    ``directory/<kind>-<key>``."""
    return Path(directory) / f"{kind}-{recipe_key(kind, recipe)}"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
