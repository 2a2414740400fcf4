"""Progress bars: one per training loop in a terminal or JupyterLab, none in a batch execution.

Under papermill every refresh of a bar is a new stderr output of the cell, so an executed chapter
would hold hundreds of them. :mod:`memnotebooks.book` and :mod:`memnotebooks.sweep` execute
chapters with ``MEMNOTEBOOKS_PROGRESS=0`` in the kernel's environment, and :func:`progress_bar`
then draws nothing, whatever ``progress`` the caller asked for.
"""

from __future__ import annotations

import contextlib
import os

from tqdm import tqdm

__all__ = ["ENVIRONMENT_VARIABLE", "progress_bar", "without_progress_bars"]

ENVIRONMENT_VARIABLE = "MEMNOTEBOOKS_PROGRESS"
"""Set to ``"0"`` to turn every progress bar of the package off."""


def progress_bar(total: int, desc: str, progress: bool = True, **kwargs) -> tqdm:
    """A tqdm bar over ``total`` steps, drawn when ``progress`` and not turned off by
    :data:`ENVIRONMENT_VARIABLE`; ``kwargs`` go to tqdm."""
    enabled = progress and os.environ.get(ENVIRONMENT_VARIABLE, "1") != "0"
    return tqdm(total=total, desc=desc, disable=not enabled, **kwargs)


@contextlib.contextmanager
def without_progress_bars():
    """Within the block, and in kernels started within it, no progress bar is drawn."""
    before = os.environ.get(ENVIRONMENT_VARIABLE)
    os.environ[ENVIRONMENT_VARIABLE] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ[ENVIRONMENT_VARIABLE]
        else:
            os.environ[ENVIRONMENT_VARIABLE] = before
