import sys
from pathlib import Path

import pytest

# tests/published_masc.py, the reference implementation, is imported by tests and benchmarks.
sys.path.insert(0, str(Path(__file__).parent))

from memnotebooks import rewinding, runs  # noqa: E402
from memnotebooks.data import validation_split  # noqa: E402


@pytest.fixture(scope="session")
def memorized_runs(tmp_path_factory):
    """A small CNN on digits at degrees 0 and 0.6 (not trained to the target: fast)."""
    config = runs.RunConfig(model="cnn", max_epochs=15, subset=600)
    cache = tmp_path_factory.mktemp("artifacts")
    return runs.run_grid(config, degrees=(0.0, 0.6), artifacts_dir=cache, device="cpu", progress=False)


@pytest.fixture(scope="session")
def memorized(tmp_path_factory):
    """The MLP on 400 digits, labels corrupted at 0.6, with checkpoints at epochs 0, 2 and 5 (test
    files with a ``memorized`` of their own use theirs)."""
    config = runs.RunConfig(corruption_degree=0.6, subset=400, max_epochs=60, checkpoint_epochs=(0, 2, 5))
    return runs.run(config, artifacts_dir=tmp_path_factory.mktemp("artifacts"), device="cpu", progress=False)


@pytest.fixture(scope="session")
def short(tmp_path_factory):
    """The MLP on 400 digits at 0.6 trained 3 epochs only (it stops at the cap), with checkpoints at
    epochs 0, 1 and 3: the last checkpoint is its final network."""
    config = runs.RunConfig(corruption_degree=0.6, subset=400, max_epochs=3, checkpoint_epochs=(0, 1, 3))
    return runs.run(config, artifacts_dir=tmp_path_factory.mktemp("artifacts"), device="cpu", progress=False)


@pytest.fixture(scope="session")
def rewound(memorized):
    """``memorized`` with its last layers rewound to epochs 2 and 5."""
    return rewinding.rewinding_table(memorized, epochs=[2, 5])


@pytest.fixture(scope="session")
def holdout_hits():
    """``hits(run_, epoch)``: which holdout test images the run's network at ``epoch`` classifies right."""
    def hits(run_, epoch):
        y_test = run_.dataset.y_test.numpy()
        holdout = ~validation_split(y_test)
        return run_.test_predictions[epoch][holdout] == y_test[holdout]
    return hits
