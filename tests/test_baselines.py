"""Chapter 05's baselines: the network's own scores, the baseline rows on the same holdout images,
and the headline table."""

import numpy as np
import pandas as pd
import pytest

from memnotebooks import baselines, decoding
from memnotebooks.data import validation_split
from memnotebooks.uncertainty import unpack_hits


def test_network_scores_choose_the_epoch_on_the_same_holdout_images(memorized_runs):
    run = memorized_runs[1]
    scores = baselines.network_scores([run]).set_index("baseline")
    history = run.history
    holdout = ~validation_split(run.dataset.y_test.numpy())
    # Every row scored on the holdout, from the per-epoch test predictions the run kept.
    assert (scores.hits.map(lambda h: len(unpack_hits(h))) == holdout.sum()).all()
    assert scores.accuracy.tolist() == scores.hits.map(lambda h: unpack_hits(h).mean()).tolist()
    final = scores.loc["network, final"]
    assert final.epoch == history.epoch.iloc[-1] and final.accuracy == pytest.approx(history.test_holdout_accuracy.iloc[-1])
    early = scores.loc["network, early-stopped (validated)"]
    assert early.epoch == history.epoch[history.test_validation_accuracy.idxmax()]
    assert early.accuracy == pytest.approx(history.test_holdout_accuracy[history.epoch == early.epoch].iloc[0])
    peak = scores.loc["network, peak (holdout-selected)"]
    assert peak.accuracy == pytest.approx(history.test_holdout_accuracy.max())
    # The noisy-validated epoch agrees best with the corrupted validation labels, which differ from the true ones.
    validation = ~holdout
    noisy = decoding.noisy_validation_labels(run)
    assert (noisy != run.dataset.y_test.numpy()[validation]).mean() > 0.3
    agreement = (run.test_predictions[:, validation] == noisy).mean(axis=1)
    assert agreement[scores.loc["network, early-stopped (noisy-validated)", "epoch"]] == agreement.max()


def test_network_hits_are_the_test_accuracy_image_by_image_grouped_by_degree(memorized_runs):
    hits = baselines.network_hits(memorized_runs)
    assert list(hits) == [r.config.corruption_degree for r in memorized_runs]
    for r in memorized_runs:
        final, start = hits[r.config.corruption_degree], baselines.network_hits([r], epoch=0)[r.config.corruption_degree]
        assert final.dtype == bool and final.shape == (1, len(r.dataset.y_test))
        assert final.mean() == pytest.approx(r.history.test_accuracy.iloc[-1]) and start.mean() == pytest.approx(r.history.test_accuracy.iloc[0])
    # Any grouping of the configs; rows in the runs' order.
    together = baselines.network_hits(memorized_runs[::-1], epoch=3, by=lambda config: config.model)
    assert list(together) == ["cnn"] and together["cnn"].shape[0] == 2
    assert (together["cnn"][1] == (memorized_runs[0].test_predictions[3] == memorized_runs[0].dataset.y_test.numpy())).all()
    assert together["cnn"].mean(axis=1).tolist() == pytest.approx([r.history.test_accuracy.iloc[3] for r in memorized_runs[::-1]])


def test_baseline_scores(memorized_runs, tmp_path):
    cache = memorized_runs[0].path.parent
    scores = baselines.baseline_scores(memorized_runs, probes=["nearest_mean", "lda"], artifacts_dir=cache, device="cpu", progress=False)
    assert scores.accuracy.between(0, 1).all()
    found = scores.groupby("baseline").corruption_degree.unique().map(sorted).to_dict()
    assert found.pop("MASC, generalized, corrupted (validated)") == [0.6]  # the control needs p > 0
    assert len(found) == 12 and all(degrees == [0.0, 0.6] for degrees in found.values())
    # Every row on the same holdout images, with its hits.
    assert (scores.hits.map(lambda h: len(unpack_hits(h))) == (~validation_split(memorized_runs[0].dataset.y_test.numpy())).sum()).all()
    assert np.allclose(scores.accuracy, scores.hits.map(lambda h: unpack_hits(h).mean()))
    masc = scores[scores.baseline.str.startswith("MASC, hidden")]
    assert "input" not in set(masc.layer)
    assert set(scores[scores.baseline.str.startswith("best probe")].layer) <= {"nearest_mean", "lda"}
    assert list(dict.fromkeys(scores.baseline))[4:9] == [
        "MASC, hidden, corrupted (holdout-selected)", "MASC, hidden, corrupted (noisy-validated)", "MASC, hidden, corrupted (validated)",
        "MASC, hidden, true (holdout-selected)", "MASC, hidden, true (validated)",
    ]
    # The untrained networks are runs of 0 epochs, cached beside the trained ones.
    untrained = baselines.untrained_runs(memorized_runs, artifacts_dir=cache, device="cpu", progress=False)
    assert [r.summary["epochs"] for r in untrained] == [0, 0]


def test_headline_table_is_mean_and_std_over_seeds():
    scores = pd.DataFrame({"baseline": ["b", "b", "a", "a", "a"], "corruption_degree": [0.4, 0.4, 0.4, 0.4, 0.8],
                           "seed": [0, 1, 0, 1, 0], "accuracy": [0.5, 0.6, 0.9, 0.7, 0.3]})
    table = baselines.headline_table(scores)
    assert table.index.tolist() == ["b", "a"] and table.columns.tolist() == ["p = 0.4", "p = 0.8"]
    assert table.loc["b", "p = 0.4"] == "0.550\u00a0±\u00a00.071" and table.loc["a", "p = 0.8"] == "0.300"
    assert table.loc["b", "p = 0.8"] == ""
