"""Learning dynamics on one small memorizing run with checkpoints: epochs of learning, gradients,
settings and widths, decoding over the checkpoints."""

import numpy as np
import pandas as pd
import pytest
import torch

from memnotebooks import decoding, dynamics, prose, runs
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


def test_epochs_reached_keep_the_order_and_leave_out_the_last_when_asked(short):
    assert short.summary["epochs"] == 3
    assert dynamics.epochs_reached(short, [3, 0, 1, 4]) == [3, 0, 1]
    assert dynamics.epochs_reached(short, [3, 0, 1, 4], final=False) == [0, 1]
    assert dynamics.epochs_reached(short, []) == []


@pytest.fixture(scope="module")
def regularized(memorized, tmp_path_factory):
    """Two seeds without a regularizer and with dropout, 4 epochs each."""
    cache = tmp_path_factory.mktemp("artifacts")
    config = memorized.config.replace(max_epochs=4, checkpoint_epochs=())
    return [runs.run(config.replace(seed=seed, **settings), artifacts_dir=cache, device="cpu", progress=False) for settings in ({}, {"dropout": 0.5}) for seed in (0, 1)]


def test_setting_table_and_regularizer_effects_pair_the_seeds(regularized):
    table = dynamics.setting_table(regularized, noise=False, epoch=2)
    assert table.setting.tolist() == ["no regularizer"] * 2 + ["dropout 0.5"] * 2 and table.seed.tolist() == [0, 1, 0, 1]
    assert table.clean_accuracy.tolist() == [r.history.set_index("epoch").clean_accuracy[2] for r in regularized]
    effects = dynamics.regularizer_effects(regularized, epoch=2)
    assert effects.index.tolist() == ["dropout 0.5"]
    d = effects.loc["dropout 0.5"]
    tests = [r.history.set_index("epoch").test_accuracy[2] for r in regularized]
    assert d.difference == pytest.approx(np.mean(tests[2:]) - np.mean(tests[:2]), abs=1e-6) and d.n_seeds == 2 and d.low <= d.difference <= d.high
    at = table.set_index(["setting", "seed"])
    off = lambda column: at.loc["no regularizer", column].to_numpy() - at.loc["dropout 0.5", column].to_numpy()
    assert d.slows == dynamics.apart(off("corrupted_accuracy_given") - off("clean_accuracy"), [0])
    pd.testing.assert_frame_equal(dynamics.settings_summary(regularized, noise=False, epoch=2)[["clean"]],
                                  table.groupby("setting", sort=False)[["clean_accuracy"]].mean().round(3).rename(columns={"clean_accuracy": "clean"}).rename_axis("regularizer"))


def test_plateaus_tell_a_flat_tail_from_a_rising_or_moving_one():
    curves = {"flat": [0.1, 0.5, 0.52, 0.5, 0.51], "rising": [0.1, 0.2, 0.4, 0.6, 0.8], "moving": [0.1, 0.3, 0.6, 0.2, 0.35], "short": [0.1, 0.2]}
    history = pd.DataFrame([{"setting": name, "epoch": e, "seed": seed, "corrupted_accuracy_given": v, "test_accuracy": 0.5 + 0.1 * np.sin(e) + 0.01 * seed}
                            for name, values in curves.items() for e, v in enumerate(values) for seed in (0, 1)])
    table = dynamics.plateaus(history, start=2, band=0.05)
    assert table["shape"].to_dict() == {"flat": "plateau", "moving": "moving", "rising": "rising"}
    assert table.loc["rising", ["start", "end", "end_epoch", "low", "high"]].tolist() == pytest.approx([0.4, 0.8, 4, 0.4, 0.8])
    assert table.loc["flat", "test_peak_epoch"] == 2 and table.loc["flat", "test_peak"] == pytest.approx(0.5 + 0.1 * np.sin(2) + 0.005)
    assert dynamics.plateaus(history, start=2, band=0.05, settings=["rising", "short", "flat"]).index.tolist() == ["rising", "flat"]


def test_gradient_grid_display_and_findings(memorized, short):
    grid = dynamics.gradient_grid([memorized, short], max_examples=10)  # default: every checkpoint each kept
    assert grid.groupby("max_epochs").epoch.unique().map(list).to_dict() == {3: [0, 1, 3], 60: [0, 2, 5]}
    pd.testing.assert_frame_equal(grid[grid.max_epochs == 3].reset_index(drop=True), dynamics.gradient_table(short, max_examples=10))
    # Epochs a run never reached are left out; one it reached but did not keep is an error.
    assert dynamics.gradient_grid([short], epochs=[3, 0, 50], max_examples=10).epoch.unique().tolist() == [3, 0]
    with pytest.raises(ValueError, match=r"Epoch\(s\) \[3\] .* were never checkpointed"):
        dynamics.gradient_grid([memorized], epochs=[3], max_examples=10)
    shown = dynamics.gradient_display(grid)
    assert [table.columns.get_level_values("measure").unique().tolist() for table in shown] == [list(v) for v in dynamics.GRADIENT_TABLES]
    clean_at_3 = grid[(grid.epoch == 3) & (grid.examples == "clean")].step_share.iloc[0]
    assert shown[2].loc[3, ("step_share", 0.6, "clean")] == prose.number(clean_at_3, 2)
    found = dynamics.gradient_findings(grid[grid.max_epochs == 3], [short]).iloc[0]
    assert found.clean_share == pytest.approx(1 - short.corrupted.mean()) and (found.epochs, found.later) == (3, 2)
    assert 0 <= found.harder <= found.later and 0 <= found.pooled <= found.epochs and found.noisy_low <= found.noisy_high
    # After epoch 0 a checkpoint's step share is either above the clean examples' share or at or below it.
    assert sorted({e for e in found.above if e > 0} | set(found.below)) == [1, 3] and not set(found.above) & set(found.below)
    assert (3 in found.below) == (clean_at_3 <= found.clean_share)


def test_decoding_grid_keeps_each_runs_checkpoints_and_the_comparisons_read_them(memorized, short):
    alone = dynamics.decoding_over_epochs([short], layers=["fc1", "fc4"])
    table = dynamics.decoding_grid([short, memorized], layers=["fc1", "fc4"])
    pd.testing.assert_frame_equal(table.iloc[: len(alone)], alone)
    assert sorted(alone.epoch.unique()) == [0, 1, 3] and sorted(table.iloc[len(alone):].epoch.unique()) == [0, 2, 5]  # not only the common 0
    own = dynamics.decoding_over_epochs([memorized], layers=["fc1", "fc4"])
    compared = dynamics.decoding_comparisons(own).loc[0.6]
    peaks = dynamics.decoding_peaks(own).loc[0.6]
    assert compared.network_epoch == peaks.loc["network", ("peak", "epoch")] and compared.masc_layer == peaks.loc["MASC", ("peak", "layer")]
    assert compared.above + compared.below + compared.level == 3 and compared.first_epoch == 0 and compared.last_epoch == 5
    validated = own[own.selection == "validated"].set_index(["decoder", "epoch"]).hits.map(lambda h: unpack_hits(h).mean())
    assert compared.masc_gain.estimate == pytest.approx(validated["MASC", compared.masc_epoch] - validated["MASC", 0])
    assert compared.masc_first_accuracy == pytest.approx(validated["MASC", 0])
    assert compared.network_last.estimate == pytest.approx(validated["network", 5] - validated["network", compared.network_epoch])


def test_width_trend_reads_the_signs_of_every_step():
    steps = pd.DataFrame({"network": ["final"] * 3 + ["stopped early"] * 3, "sign": [1, 0, 1, 1, -1, 0]})
    assert dynamics.width_trend(steps, "final") == "rises with width at some steps and is level at others"
    assert dynamics.width_trend(steps, "stopped early") == "is not monotone in width"
    assert dynamics.width_trend(steps.assign(sign=-1), "final") == "falls with width"


def test_velpic_over_training_beside_masc(memorized):
    table = dynamics.decoding_over_epochs([memorized], epochs=[0, 5], probes=("masc", "velpic"))
    assert set(table.decoder) == {"network", "MASC", "VeLPIC"}
    alone = dynamics.decoding_over_epochs([memorized], epochs=[0, 5])
    masc = lambda t: t[t.decoder != "VeLPIC"].reset_index(drop=True)
    pd.testing.assert_frame_equal(masc(table), masc(alone))  # MASC's rows do not change with VeLPIC beside them
    velpic = table[(table.decoder == "VeLPIC") & (table.selection == "test-selected")].set_index("epoch").accuracy
    layerwise = decoding.layerwise_evaluation(memorized, probes=("velpic",), fit_labels="corrupted", epoch=5)
    assert velpic[5] == layerwise[layerwise.split == "test"].accuracy.max()
    compared = dynamics.decoding_comparisons(table).loc[0.6]
    assert compared.masc_epoch == dynamics.decoding_comparisons(alone).loc[0.6].masc_epoch
    assert compared.above + compared.below + compared.level == 2  # MASC against the network only
    peak = dynamics.decoding_peaks(table).loc[(0.6, "VeLPIC")]
    assert compared.velpic_epoch == peak["peak", "epoch"] and compared.velpic_over_masc.n_images == 360
