"""memnotebooks: memorization and latent generalization in deep networks.

Modules, one concept each, read bottom-up in layers (a module imports only from layers below it
and from the analyses before it, never in a circle):

- leaves: :mod:`~memnotebooks.store` (the one artifact cache), :mod:`~memnotebooks.devices`,
  :mod:`~memnotebooks.progress`, :mod:`~memnotebooks.prose` (the book's computed sentences),
  :mod:`~memnotebooks.uncertainty` (paired intervals), :mod:`~memnotebooks.corruption`,
  :mod:`~memnotebooks.models`, :mod:`~memnotebooks.data`, :mod:`~memnotebooks.paper` (what the
  paper did);
- arrays: :mod:`~memnotebooks.masc` (the Minimum Angle Subspace Classifier),
  :mod:`~memnotebooks.probes`, :mod:`~memnotebooks.subspaces` (subspace measures),
  :mod:`~memnotebooks.manifolds` (mean-field manifold capacity), :mod:`~memnotebooks.activations`;
- training: :mod:`~memnotebooks.training`, :mod:`~memnotebooks.gradients` (per-example
  gradients), :mod:`~memnotebooks.stacked` (many runs trained as one stacked model);
- runs: :mod:`~memnotebooks.runs` (the cached runs the chapters share);
- analyses: :mod:`~memnotebooks.tables` (tidy display and difference tables),
  :mod:`~memnotebooks.decoding` (a run's layers decoded), :mod:`~memnotebooks.baselines`
  (chapter 05's headline and baselines), :mod:`~memnotebooks.layer_geometry` (the class
  subspaces of a run's layers), :mod:`~memnotebooks.relabel` (relabel and retrain),
  :mod:`~memnotebooks.dynamics` (learning dynamics), :mod:`~memnotebooks.layer_manifolds` (the
  class manifolds of a run's layers), :mod:`~memnotebooks.rewinding` (rewinding and the ways of
  recovering generalization);
- outputs: :mod:`~memnotebooks.report` (a sweep beside the paper's table),
  :mod:`~memnotebooks.plotting`, :mod:`~memnotebooks.book` (executes the chapters and builds the
  book), :mod:`~memnotebooks.sweep` (batch runs), :mod:`~memnotebooks.holds` (what holds) and
  :mod:`~memnotebooks.explorers` (the chapters' interactive views, ipywidgets).
"""

__version__ = "0.1.0"
