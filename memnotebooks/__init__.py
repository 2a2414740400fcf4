"""memnotebooks: memorization and latent generalization in deep networks.

Modules, one concept each: :mod:`~memnotebooks.data`, :mod:`~memnotebooks.corruption`,
:mod:`~memnotebooks.models`, :mod:`~memnotebooks.devices`, :mod:`~memnotebooks.training`,
:mod:`~memnotebooks.activations`, :mod:`~memnotebooks.masc` (the Minimum Angle Subspace
Classifier), :mod:`~memnotebooks.probes`, :mod:`~memnotebooks.geometry`,
:mod:`~memnotebooks.store` (the one artifact cache), :mod:`~memnotebooks.runs` (the cached runs
the chapters share), :mod:`~memnotebooks.stacked` (many runs trained as one stacked model),
:mod:`~memnotebooks.evaluation` (their layerwise decoding), :mod:`~memnotebooks.relabel`
(relabel and retrain), :mod:`~memnotebooks.dynamics` (learning dynamics, manifolds and
rewinding), :mod:`~memnotebooks.report` (the paper's table) and :mod:`~memnotebooks.plotting`;
:mod:`~memnotebooks.book` executes the chapters and builds the book.
"""

__version__ = "0.1.0"
