"""Reports: a cache's runs gathered, set beside the paper's table, written with their provenance."""

import json

import numpy as np
import pandas as pd
import pytest

from memnotebooks import report, runs
from memnotebooks.store import StaleArtifactError


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("artifacts")
    config = runs.RunConfig(subset=400, max_epochs=4)
    runs.run_grid(config, degrees=(0.2, 0.6), seeds=(0, 1), artifacts_dir=artifacts, device="cpu", progress=False)
    runs.run(config.replace(max_epochs=0), artifacts_dir=artifacts, device="cpu", progress=False)  # untrained: left out
    return artifacts


def test_gather_reads_every_trained_run_and_its_best_layers(cache):
    found = report.trained_runs(cache)
    assert [(r.config.corruption_degree, r.config.seed) for r in found] == [(0.2, 0), (0.2, 1), (0.6, 0), (0.6, 1)]
    gathered = report.gather(found)
    network = gathered[gathered.measure == "model_test"].set_index(["corruption_degree", "seed"]).accuracy
    for r in found:
        assert network[r.config.corruption_degree, r.config.seed] == r.summary["test_accuracy"]
    masc = gathered[gathered.measure != "model_test"]
    assert set(masc.measure) == {"masc_corrupted", "masc_true"} and set(masc.selection) == {"test-selected", "validated"}
    # One layer per degree, measure and selection, shared by the seeds (chosen on their mean).
    assert (masc.groupby(["corruption_degree", "measure", "selection"]).layer.nunique() == 1).all()


def test_comparison_sets_the_paper_beside_the_mean_over_seeds():
    gathered = pd.DataFrame(
        {
            "model": "cnn", "dataset": "fashion_mnist", "corruption_degree": 0.2, "seed": [0, 1],
            "measure": "model_test", "selection": "final", "layer": "output", "accuracy": [0.80, 0.84],
        }
    )
    row = report.comparison(gathered).iloc[0]
    paper = report.paper_table().set_index(["model", "dataset", "corruption_degree"]).loc[("cnn", "fashion_mnist", 0.2), "model_test"]
    assert row["mean"] == pytest.approx(0.82) and row["std"] == pytest.approx(np.std([0.80, 0.84], ddof=1)) and row.seeds == 2
    assert row.paper == paper and row.difference == pytest.approx(0.82 - paper)
    digits = report.comparison(gathered.assign(dataset="digits", model="mlp")).iloc[0]
    assert np.isnan(digits.paper)  # the paper has no such row


def test_write_and_load_a_report(cache, tmp_path):
    found = report.trained_runs(cache)
    folder = report.write_report(tmp_path / "report", found, "python -m memnotebooks.report test", sweep={"name": "tiny"})
    table, provenance = report.load_report(folder)
    assert set(table.corruption_degree) == {0.2, 0.6}
    assert provenance["sweep"] == {"name": "tiny"} and len(provenance["runs"]) == 4
    assert all(run["device"] and run["torch"] and run["seconds"] > 0 for run in provenance["runs"])
    assert provenance["total_seconds"] == pytest.approx(sum(run["seconds"] for run in provenance["runs"]))
    assert not list(tmp_path.glob(".tmp-*"))

    record = json.loads((folder / "provenance.json").read_text())
    (folder / "provenance.json").write_text(json.dumps({**record, "cache_version": -1}))
    with pytest.raises(StaleArtifactError, match=r"written under cache version -1.*rerun its command \(python -m memnotebooks.report test\)"):
        report.load_report(folder)
    with pytest.raises(FileNotFoundError, match="No report in"):
        report.load_report(tmp_path / "nothing")
