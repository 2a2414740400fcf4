"""Learning dynamics on one small memorizing run with checkpoints: epochs of learning, gradients,
settings and widths, decoding over the checkpoints."""

import numpy as np
import pytest
import torch

from memnotebooks import decoding, dynamics, runs
from memnotebooks.data import validation_split
from memnotebooks.gradients import per_example_gradient_norms, summed_gradient
from memnotebooks.models import build_model
from memnotebooks.uncertainty import unpack_hits


def holdout_hits(run_, epoch):
    y_test = run_.dataset.y_test.numpy()
    holdout = ~validation_split(y_test)
    return run_.test_predictions[epoch][holdout] == y_test[holdout]


def test_clean_examples_are_learned_before_corrupted_ones(memorized):
    table = dynamics.learning_table([memorized])
    assert len(table) == 400 and set(table.examples) == {"clean", "corrupted"}
    assert (table.examples == "corrupted").sum() == memorized.corrupted.sum()
    median = table[table.learned_epoch >= 0].groupby("examples").learned_epoch.median()
    assert median["clean"] < median["corrupted"]


def test_gradients_per_checkpoint(memorized):
    table = dynamics.gradient_table(memorized, max_examples=None)
    assert list(table.epoch.unique()) == [0, 2, 5]
    assert (table.groupby("epoch").n_points.sum() == 400).all() and (table.mean_norm > 0).all()
    assert table.groupby("epoch").step_share.sum().tolist() == pytest.approx([1, 1, 1], abs=1e-4)
    assert table.coherence.between(0, 1 + 1e-6).all()
    sampled = dynamics.gradient_table(memorized, epochs=[5], max_examples=50)
    assert list(sampled.n_points) == [50, 50]
    assert sampled.mean_norm.tolist() == pytest.approx(table[table.epoch == 5].mean_norm.tolist(), rel=0.5)
    # The step shares use every example, whatever the draw.
    assert sampled.step_share.tolist() == pytest.approx(table[table.epoch == 5].step_share.tolist(), abs=1e-6)
    # One example agrees with itself.
    single = dynamics.gradient_table(memorized, epochs=[5], max_examples=1)
    assert single.coherence.tolist() == pytest.approx([1, 1], abs=1e-3)  # float32 sums of 10⁶ squares
    assert single.coherence_null.tolist() == pytest.approx([1, 1]) and single.within_class_coherence.isna().all()
    # The null of unrelated directions is 1/√n for equal norms, and larger for unequal ones.
    assert (sampled.coherence_null >= 1 / np.sqrt(50) - 1e-9).all() and (sampled.coherence_null < 1).all()
    assert (sampled.coherence_null > 1.02 / np.sqrt(50)).any()  # the norms differ
    # Within one label the examples agree more than across all ten, and the null rises with fewer examples.
    assert (table.within_class_coherence >= table.coherence - 1e-6).all()
    assert (table.within_class_null > table.coherence_null).all() and table.within_class_coherence.between(0, 1 + 1e-6).all()
    # Once the clean examples are fitted their loss, and so their gradient, is the smaller.
    at_five = table[table.epoch == 5].set_index("examples").mean_norm
    assert at_five["clean"] < at_five["corrupted"]
    with pytest.raises(ValueError, match=r"Epoch\(s\) \[3\] .* were never checkpointed; it kept \[0, 2, 5\]"):
        dynamics.gradient_table(memorized, epochs=[3])


def test_summed_gradient_is_the_sum_of_the_examples_gradients():
    torch.manual_seed(0)
    model, x, y = build_model("mlp", (1, 8, 8), 10), torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    one_by_one = sum(summed_gradient(model, x[i : i + 1], y[i : i + 1]) for i in range(6))
    assert torch.allclose(summed_gradient(model, x, y, batch_size=4), one_by_one, atol=1e-5)
    assert summed_gradient(model, x[:1], y[:1]).norm() == pytest.approx(float(per_example_gradient_norms(model, x[:1], y[:1])[0]), rel=1e-4)
    with pytest.raises(ValueError, match="x has 6 samples but y has 5"):
        summed_gradient(model, x, y[:5])


def test_decoding_over_epochs(memorized):
    table = dynamics.decoding_over_epochs([memorized], epochs=[0, 5])
    assert set(table.epoch) == {0, 5} and set(table.decoder) == {"network", "MASC"}
    network = table[(table.decoder == "network") & (table.selection == "test-selected")].set_index("epoch").accuracy
    assert network[5] == pytest.approx(memorized.history.set_index("epoch").test_accuracy[5])
    masc = table[(table.decoder == "MASC") & (table.selection == "test-selected")].set_index("epoch").accuracy
    layerwise = decoding.layerwise_evaluation(memorized, fit_labels="corrupted", epoch=5)
    assert masc[5] == layerwise[layerwise.split == "test"].accuracy.max()  # the paper's best layer
    assert network[0] < 0.3 < masc[0]  # an untrained network guesses; its input still decodes
    peaks = dynamics.decoding_peaks(table, selection="test-selected")
    assert peaks.loc[(0.6, "network"), ("peak", "accuracy")] == round(network.max(), 3)
    # Validated: the checkpoint is chosen on the validation part, scored on the holdout part.
    validated = table[table.selection == "validated"]
    for decoder, rows in validated.groupby("decoder"):
        hits = [unpack_hits(h) for h in rows.hits]
        assert {len(h) for h in hits} == {360} and [h.mean() for h in hits] == pytest.approx(rows.accuracy.tolist(), abs=1e-6)
        best = rows.loc[rows.validation_accuracy.idxmax()]
        assert dynamics.decoding_peaks(table).loc[(0.6, decoder), ("peak", "epoch")] == best.epoch
        assert dynamics.decoding_peaks(table).loc[(0.6, decoder), ("peak", "accuracy")] == round(best.accuracy, 3)
    history = memorized.history.set_index("epoch")
    assert validated[validated.decoder == "network"].set_index("epoch").validation_accuracy[5] == pytest.approx(history.test_validation_accuracy[5])
    assert peaks.loc[(0.6, "MASC"), ("last checkpoint", "epoch")] == 5 and peaks.loc[(0.6, "network"), ("last checkpoint", "layer")] == "output"
    with pytest.raises(ValueError, match="never checkpointed"):
        dynamics.decoding_over_epochs([memorized], epochs=[4])
    narrow = dynamics.decoding_over_epochs([memorized], epochs=[5], layers=["fc1"])
    assert set(narrow[narrow.decoder == "MASC"].layer) == {"fc1"}


def test_setting_labels_and_summaries(memorized):
    base = runs.RunConfig()
    assert dynamics.setting_label(base) == "real data"
    assert dynamics.setting_label(base.replace(corruption_degree=1.0, corruption_mode="permute")) == "permuted labels (p = 1.0)"
    assert dynamics.setting_label(base.replace(corruption_degree=0.6, dropout=0.5, weight_decay=0.01)) == "random labels (p = 0.6), dropout 0.5, weight decay 0.01"
    summary = dynamics.settings_summary([memorized])
    assert list(summary.index) == ["random labels (p = 0.6)"]
    assert summary.loc["random labels (p = 0.6)", "reached target"] == ("1 of 1" if memorized.summary["reached_target"] else "0 of 1")
    assert summary.seeds.tolist() == [1] and summary["epochs (spread)"].tolist() == [f"{memorized.summary['epochs']:.1f}"]
    at_five = dynamics.settings_summary([memorized], epoch=5)
    assert at_five.loc["random labels (p = 0.6)", "test"] == round(memorized.history.set_index("epoch").test_accuracy[5], 3)
    with pytest.raises(ValueError, match="stopped before epoch 1000"):
        dynamics.settings_summary([memorized], epoch=1000)
    assert (dynamics.apart([3, 4], [1, 2]), dynamics.apart([1], [2, 3]), dynamics.apart([1, 3], [2])) == (1, -1, 0)
    assert list(dynamics.settings_summary([memorized], noise=False).index) == ["no regularizer"]
    assert summary.loc["random labels (p = 0.6)", "test"] == pytest.approx(memorized.summary["test_accuracy"], abs=5e-4)
    history = dynamics.settings_history([memorized])
    assert (history.setting == "random labels (p = 0.6)").all() and len(history) == memorized.summary["epochs"] + 1
    learning = dynamics.learning_summary(dynamics.learning_table([memorized]))
    assert learning.loc[(0.6, "clean"), "median epoch"] < learning.loc[(0.6, "corrupted"), "median epoch"]
    assert learning["share not learned"].between(0, 1).all()
    assert learning["median epoch"].dtype.kind == "i" and learning["90th percentile"].dtype.kind == "i"  # epochs, not 12.0
    with pytest.raises(ValueError, match=r"Unknown RunConfig field\(s\) \['depth'\]"):
        runs.history_table([memorized], fields=["depth"])


def test_width_summary(memorized, tmp_path):
    narrow = runs.run(memorized.config.replace(width=0.125, max_epochs=3), artifacts_dir=tmp_path, device="cpu", progress=False)
    table = dynamics.width_summary([narrow, memorized])
    assert list(table["hidden widths"]) == ["16-64-256-256", "128-512-2048-2048"] and list(table.width) == [0.125, 1.0]
    assert table.epochs.tolist() == [3, memorized.summary["epochs"]]
    history = memorized.history
    assert table["holdout, stopped early"][1] == round(history.test_holdout_accuracy[history.test_validation_accuracy.idxmax()], 3)


def test_widths_are_compared_image_by_image(memorized, tmp_path):
    narrow = runs.run(memorized.config.replace(width=0.125, max_epochs=3), artifacts_dir=tmp_path, device="cpu", progress=False)
    summary = dynamics.width_summary([narrow, memorized])
    assert summary["holdout, final"].tolist() == pytest.approx([unpack_hits(h).mean() for h in summary["hits, final"]], abs=5e-4)
    assert summary["stopped at"][1] == int(runs.early_stopped(memorized.history).epoch)
    table = dynamics.width_differences(summary)
    assert list(table.network) == ["final", "stopped early"] and (table.narrow == 0.125).all() and (table.wide == 1.0).all()
    final = table.iloc[0]
    assert final.difference == pytest.approx(holdout_hits(memorized, memorized.summary["epochs"]).mean() - holdout_hits(narrow, 3).mean())
    assert final.n_seeds == 1 and final.low <= final.difference <= final.high
