"""memnotebooks: memorization and latent generalization in deep networks.

Modules, one concept each: :mod:`~memnotebooks.data`, :mod:`~memnotebooks.corruption`,
:mod:`~memnotebooks.models`, :mod:`~memnotebooks.training`, :mod:`~memnotebooks.activations`,
:mod:`~memnotebooks.masc` (the Minimum Angle Subspace Classifier), :mod:`~memnotebooks.probes`,
:mod:`~memnotebooks.geometry`, :mod:`~memnotebooks.experiments` (the cached runs the chapters
share and their layerwise evaluation) and :mod:`~memnotebooks.plotting`; :mod:`~memnotebooks.book`
executes the chapters and builds the book.
"""

__version__ = "0.1.0"
