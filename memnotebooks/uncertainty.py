"""How sure a difference between two accuracies is: a paired bootstrap over test images and seeds.

Two classifiers scored on the same ``n`` test images, in each of ``S`` seeds (runs), give per
seed ``s`` and image ``i`` a hit ``a_si`` and ``b_si`` (1 right, 0 wrong). The number a sentence
reports is the mean over seeds of the accuracy difference

.. math:: \\Delta = \\frac{1}{S n} \\sum_{s, i} (a_{si} - b_{si}).

Two things make it uncertain: which images the test set happened to hold (one image of 360 is
0.28 points), and which seeds trained the networks. :func:`paired_bootstrap` resamples both:
each replicate draws ``n`` images with replacement, *the same draw for both classifiers and every
seed* (the seeds are scored on the same images, so the image is the unit that pairs them; pairing
keeps the correlation between the two classifiers' errors, which makes a paired interval far
narrower than two separate ones), and ``S`` seeds with replacement, and recomputes
:math:`\\Delta`. The 2.5th and 97.5th percentiles of the replicates give a 95 % interval.

Why a bootstrap and not an exact paired test: McNemar's test is exact for one seed but has no
place for several; the two-way bootstrap takes seeds and images in one step, and gives an
interval for *how large* the difference is, not only whether it is zero. With 3 seeds the seed
draw is coarse (10 distinct multisets); that is a reason to say how many seeds, not to hide them.

A difference is *news* when its interval excludes zero: :attr:`Difference.sign` is then +1 or −1,
else 0, and the book's comparison words (:func:`memnotebooks.prose.verb`) follow it.
Per-image hits travel in result tables as short text (:func:`pack_hits`, :func:`unpack_hits`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CONFIDENCE", "N_RESAMPLES", "Difference", "accuracy_interval", "pack_hits", "paired_bootstrap", "unpack_hits"]

CONFIDENCE = 0.95
"""Coverage of every interval the book reports."""

N_RESAMPLES = 10_000
"""Bootstrap replicates per interval (the interval's ends then move by well under 0.001 between
bootstrap seeds)."""


@dataclass(frozen=True)
class Difference:
    """A difference of two mean accuracies (or one accuracy, against zero) and its interval.

    Attributes
    ----------
    estimate : float
        :math:`\\Delta`, the mean over seeds of the accuracy difference (a fraction, not points).
    low, high : float
        The :data:`CONFIDENCE` bootstrap interval.
    n_images, n_seeds : int
        What it was measured on.
    """

    estimate: float
    low: float
    high: float
    n_images: int
    n_seeds: int

    @property
    def sign(self) -> int:
        """+1 when the interval lies above zero, −1 below, 0 when it contains zero."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def _hits(hits, name: str) -> np.ndarray:
    hits = np.asarray(hits)
    if hits.ndim == 1:
        hits = hits[None, :]
    if hits.ndim != 2 or hits.shape[1] == 0:
        raise ValueError(f"{name} must have shape (n_seeds, n_images) or (n_images,) with n_images > 0, got shape {hits.shape}.")
    if not np.isin(hits, (0, 1)).all():
        raise ValueError(f"{name} must hold hits (0/1 or booleans); got values {np.unique(hits)[:5].tolist()}.")
    return hits.astype(np.float64)


def paired_bootstrap(hits_a, hits_b=None, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0) -> Difference:
    """The mean accuracy difference of ``a`` over ``b`` on the same images, with its interval.

    Parameters
    ----------
    hits_a, hits_b : array-like of shape (n_seeds, n_images) or (n_images,), 0/1 or bool
        Per seed (run) and test image, whether each classifier was right. Row ``s`` of both is
        the same seed; column ``i`` the same image in every row. ``hits_b=None`` gives ``a``'s
        own accuracy and its interval.
    n_resamples : int
    confidence : float in (0, 1)
    seed : int
        Seed of the resampling (the same seed gives the same interval).

    Returns
    -------
    Difference

    Examples
    --------
    >>> a = np.r_[np.ones(90), np.zeros(10)]     # 0.90
    >>> b = np.r_[np.ones(80), np.zeros(20)]     # 0.80, wrong on a's 10 errors and 10 more
    >>> d = paired_bootstrap(a, b)
    >>> round(d.estimate, 3), d.sign
    (0.1, 1)
    """
    a = _hits(hits_a, "hits_a")
    b = None if hits_b is None else _hits(hits_b, "hits_b")
    if b is not None and b.shape != a.shape:
        raise ValueError(f"hits_a and hits_b must have the same shape (same seeds, same images); got {a.shape} and {np.shape(hits_b)}.")
    difference = a if b is None else a - b
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}.")
    n_seeds, n_images = difference.shape
    rng = np.random.default_rng(seed)
    # Resampling with replacement is a multinomial weighting: replicate r weighs image i by how
    # often it was drawn, and seed s likewise; one matrix product then gives every replicate.
    image_weights = rng.multinomial(n_images, np.full(n_images, 1 / n_images), size=n_resamples)
    seed_weights = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_resamples)
    replicates = np.einsum("rs,si,ri->r", seed_weights, difference, image_weights) / (n_seeds * n_images)
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return Difference(float(difference.mean()), float(low), float(high), n_images, n_seeds)


def accuracy_interval(hits, **kwargs) -> Difference:
    """One accuracy and its interval over images and seeds (:func:`paired_bootstrap` of ``hits``
    alone); to compare it with a constant, compare the constant with ``low`` and ``high``."""
    return paired_bootstrap(hits, None, **kwargs)


def pack_hits(hits) -> str:
    """Per-image hits (bool, shape (n,)) as compact text: ``"<n>:<hex>"`` (a table cell)."""
    hits = np.asarray(hits, dtype=bool)
    return f"{len(hits)}:{np.packbits(hits).tobytes().hex()}"


def unpack_hits(text: str) -> np.ndarray:
    """The hits :func:`pack_hits` wrote, as a bool array of shape (n,)."""
    size, _, data = str(text).partition(":")
    if not size.isdigit():
        raise ValueError(f"Not packed hits (expected '<n>:<hex>'): {text!r}.")
    return np.unpackbits(np.frombuffer(bytes.fromhex(data), dtype=np.uint8), count=int(size)).astype(bool)
