"""Recovering generalization, compared image by image: rewinding, the recovery table, widths, and
the manifold groups measured at one size."""

import numpy as np
import pandas as pd
import pytest

from memnotebooks import dynamics, runs
from memnotebooks.data import validation_split
from memnotebooks.uncertainty import unpack_hits


@pytest.fixture(scope="module")
def memorized(tmp_path_factory):
    config = runs.RunConfig(corruption_degree=0.6, subset=400, max_epochs=60, checkpoint_epochs=(0, 2, 5))
    return runs.run(config, artifacts_dir=tmp_path_factory.mktemp("artifacts"), device="cpu", progress=False)


def holdout_hits(run_, epoch):
    y_test = run_.dataset.y_test.numpy()
    holdout = ~validation_split(y_test)
    return run_.test_predictions[epoch][holdout] == y_test[holdout]


@pytest.fixture(scope="module")
def rewinding(memorized):
    return dynamics.rewinding_table(memorized, epochs=[2, 5])


def test_rewinding_rows_carry_their_holdout_hits(memorized, rewinding):
    hits = rewinding.hits.map(unpack_hits)
    assert (hits.map(len) == (~validation_split(memorized.dataset.y_test.numpy())).sum()).all()
    assert np.allclose(hits.map(np.mean), rewinding.test_holdout_accuracy)
    # L = 0 is the memorized network; L = all (5) is the checkpoint, whose predictions the run kept.
    np.testing.assert_array_equal(unpack_hits(rewinding[rewinding.layers_rewound == 0].hits.iloc[0]), holdout_hits(memorized, memorized.summary["epochs"]))
    np.testing.assert_array_equal(unpack_hits(rewinding[(rewinding.layers_rewound == 5) & (rewinding.epoch == 2)].hits.iloc[0]), holdout_hits(memorized, 2))


def test_rewinding_differences(rewinding):
    table = dynamics.rewinding_differences(rewinding)
    assert set(table.layers_rewound) == {1, 2, 3, 4} and set(table.reference) == {"memorized", "checkpoint"} and set(table.epoch) == {2, 5}
    accuracy = rewinding.set_index(["epoch", "layers_rewound"]).test_holdout_accuracy
    for row in table.itertuples():
        reference = 0 if row.reference == "memorized" else 5
        assert row.difference == pytest.approx(accuracy[row.epoch, row.layers_rewound] - accuracy[row.epoch, reference])
        assert row.low <= row.difference <= row.high and row.sign == (1 if row.low > 0 else -1 if row.high < 0 else 0)
    assert (table.n_seeds == 1).all() and (table.n_images == len(unpack_hits(rewinding.hits.iloc[0]))).all()
    with pytest.raises(ValueError, match="needs L = 0"):
        dynamics.rewinding_differences(rewinding[rewinding.layers_rewound > 0])
    verdicts = dynamics.rewinding_verdicts(table).set_index(["corruption_degree", "layers_rewound", "reference"])
    assert len(verdicts) == 8 and (verdicts.above + verdicts.level + verdicts.below == verdicts.epochs).all() and (verdicts.epochs == 2).all()
    row = table[(table.layers_rewound == 4) & (table.reference == "checkpoint")]
    assert verdicts.loc[(0.6, 4, "checkpoint"), "epochs level"] == sorted(row.epoch[row.sign == 0].tolist())


def test_recovery_rows_carry_hits_and_are_compared_with_stopping_early(memorized, rewinding):
    table = dynamics.recovery_table(memorized, rewinding, relabel_methods=[])
    assert list(table.index) == ["memorized", "stopped early", "rewound", "MASC"] and table.hits.notna().all()
    assert (table.corruption_degree == 0.6).all() and (table.seed == 0).all()
    assert np.allclose(table.hits.map(lambda h: unpack_hits(h).mean()), table["holdout accuracy"], atol=5e-4)
    early = int(table.loc["stopped early", "choice"].removeprefix("epoch "))
    np.testing.assert_array_equal(unpack_hits(table.loc["stopped early", "hits"]), holdout_hits(memorized, early))
    stacked = pd.concat({"p = 0.6, seed 0": table}, names=["run"])
    differences = dynamics.recovery_differences(stacked).set_index("recovery")
    assert list(differences.index) == ["memorized", "rewound", "MASC"]
    accuracy = table.hits.map(lambda h: unpack_hits(h).mean())
    assert differences.loc["memorized", "difference"] == pytest.approx(accuracy["memorized"] - accuracy["stopped early"])
    # A row without hits (a relabelling whose table has none) gets no verdict.
    stacked.loc[("p = 0.6, seed 0", "MASC"), "hits"] = None
    assert "MASC" not in set(dynamics.recovery_differences(stacked).recovery)
    shown = dynamics.recovery_display(stacked)
    assert list(shown.columns) == ["choice", "holdout accuracy"]
    assert list(shown.index.get_level_values(-1)) == ["memorized network", "network stopped early", "best rewinding", "MASC at its best layer"]
    assert dynamics.recovery_name("retrained, masc_crossfit") == "retrained on out-of-fold MASC labels"
    assert dynamics.recovery_name("retrained, true_labels") == "retrained, true labels" and dynamics.recovery_name("retrained, novel") == "retrained, novel"


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


def test_manifold_groups_are_measured_at_one_size(memorized):
    table = dynamics.manifold_table(memorized, layers=["input", "fc4"], epochs=[0, 5], points_per_class=40, n_t=30)
    sizes = table.n_points.unique()
    assert len(sizes) == 1 and 2 <= sizes[0] <= 40
    unequal = dynamics.manifold_table(memorized, layers=["input"], epochs=[0], points_per_class=40, n_t=30, equal_sizes=False)
    # Unequal, the groups differ in size (the clean examples are fewer per class at p = 0.6) and
    # the smallest manifold is the size of every equal one.
    assert unequal.n_points.nunique() > 1 and unequal.n_points.min() == sizes[0] and (unequal.n_points <= 40).all()
    ratios = dynamics.manifold_ratios(table, "radius")
    change = dynamics.manifold_change(table, "radius")
    for row in ratios.itertuples():
        assert round(row.ratio, 2) == change.loc[(row.corruption_degree, row.group), row.layer]
        assert row.fell + row.rose <= row.n == table[(table.epoch == 0) & (table.group == row.group) & (table.layer == row.layer)].shape[0]
    on_input = ratios[ratios.layer == "input"]
    assert (on_input.ratio == 1).all() and (on_input.fell == 0).all() and (on_input.rose == 0).all()  # the input does not train
