"""memnotebooks: memorization and latent generalization in deep networks.

Modules, one concept each: :mod:`~memnotebooks.data`, :mod:`~memnotebooks.corruption`,
:mod:`~memnotebooks.models`, :mod:`~memnotebooks.training`, :mod:`~memnotebooks.activations`,
:mod:`~memnotebooks.experiments` (the cached runs the chapters share) and
:mod:`~memnotebooks.plotting`.
"""

__version__ = "0.1.0"
