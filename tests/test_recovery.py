"""Every way of recovering generalization from a memorized run, chosen on validation and compared image by image."""

import numpy as np
import pandas as pd
import pytest

from memnotebooks import editing, prose, recovery, rewinding
from memnotebooks.uncertainty import unpack_hits


def test_recovery_table(memorized):
    rewound = rewinding.rewinding_table(memorized, depths=[0, 2])
    table = recovery.recovery_table(memorized, rewound, relabel_methods=["masc_corrupted"], max_epochs=2)
    assert list(table.index) == ["memorized", "stopped early", "rewound", "MASC", "retrained, masc_corrupted"]
    history = memorized.history
    assert table.loc["memorized", "holdout accuracy"] == round(history.test_holdout_accuracy.iloc[-1], 3)
    best = rewound.loc[rewound.test_validation_accuracy.idxmax()]
    assert table.loc["rewound", "choice"] == f"L = {best.layers_rewound}, epoch {best.epoch}"
    assert table.loc["rewound", "holdout accuracy"] == round(best.test_holdout_accuracy, 3)
    # Rewinding every layer is the checkpoint itself (an early stop), so it is not a rewinding.
    full = rewinding.rewinding_table(memorized, depths=[5])
    assert recovery.recovery_table(memorized, pd.concat([rewound, full]), relabel_methods=[]).loc["rewound", "choice"] == table.loc["rewound", "choice"]
    # Stopping early keeps the epoch of the best validation accuracy and scores it on the holdout part.
    early = int(table.loc["stopped early", "choice"].removeprefix("epoch "))
    by_epoch = history.set_index("epoch")
    assert by_epoch.test_validation_accuracy[early] == history.test_validation_accuracy.max()
    assert table.loc["stopped early", "holdout accuracy"] == round(by_epoch.test_holdout_accuracy[early], 3)


def test_recovery_rows_carry_hits_and_are_compared_with_stopping_early(memorized, rewound, holdout_hits):
    table = recovery.recovery_table(memorized, rewound, relabel_methods=[])
    assert list(table.index) == ["memorized", "stopped early", "rewound", "MASC"] and table.hits.notna().all()
    assert (table.corruption_degree == 0.6).all() and (table.seed == 0).all()
    assert np.allclose(table.hits.map(lambda h: unpack_hits(h).mean()), table["holdout accuracy"], atol=5e-4)
    early = int(table.loc["stopped early", "choice"].removeprefix("epoch "))
    np.testing.assert_array_equal(unpack_hits(table.loc["stopped early", "hits"]), holdout_hits(memorized, early))
    stacked = pd.concat({"p = 0.6, seed 0": table}, names=["run"])
    differences = recovery.recovery_differences(stacked).set_index("recovery")
    assert list(differences.index) == ["memorized", "rewound", "MASC"]
    accuracy = table.hits.map(lambda h: unpack_hits(h).mean())
    assert differences.loc["memorized", "difference"] == pytest.approx(accuracy["memorized"] - accuracy["stopped early"])
    # A row without hits (a relabelling whose table has none) gets no verdict.
    stacked.loc[("p = 0.6, seed 0", "MASC"), "hits"] = None
    assert "MASC" not in set(recovery.recovery_differences(stacked).recovery)
    shown = recovery.recovery_display(stacked)
    assert list(shown.columns) == ["choice", "holdout accuracy"]
    assert list(shown.index.get_level_values(-1)) == ["memorized network", "network stopped early", "best rewinding", "MASC at its best layer"]
    assert recovery.recovery_name("retrained, masc_crossfit") == "retrained on out-of-fold MASC labels"
    assert recovery.recovery_name("retrained, true_labels") == "retrained, true labels" and recovery.recovery_name("retrained, novel") == "retrained, novel"


def test_recovery_grid_gives_each_run_its_own_rewindings(memorized, short):
    rewound = rewinding.rewinding_grid([short, memorized], epochs=[0], depths=[0, 1, 5])
    table = recovery.recovery_grid([memorized], rewound, relabel_methods=())
    assert table.index.names == ["run", "recovery"] and set(table.index.get_level_values("run")) == {"p = 0.6, seed 0"}
    own = rewinding.rewinding_table(memorized, epochs=[0], depths=[0, 1, 5])  # not short's, of the same degree and seed
    pd.testing.assert_frame_equal(table.loc["p = 0.6, seed 0"], recovery.recovery_table(memorized, own, relabel_methods=()))


def test_probe_and_edit_rows_are_chosen_on_validation_and_scored_on_holdout(memorized, rewound):
    table = recovery.recovery_table(memorized, rewound, relabel_methods=[], probes=["masc", "velpic"], readouts=["velpic", "dfr"])
    assert list(table.index) == ["memorized", "stopped early", "rewound", "MASC", "VeLPIC", "edited, velpic", "edited, dfr"]
    assert table.hits.notna().all()
    assert np.allclose(table.hits.map(lambda h: unpack_hits(h).mean()), table["holdout accuracy"], atol=5e-4)
    edits = editing.editing_table(memorized, readouts=["velpic", "dfr"])
    velpic = edits[(edits.readout == "velpic")].pivot_table(index="epoch", columns="split", values="accuracy")
    chosen = int(velpic.test_validation.idxmax())
    assert table.loc["edited, velpic", "choice"] == f"epoch {chosen}"
    assert table.loc["edited, velpic", "holdout accuracy"] == round(velpic.test_holdout[chosen], 3)
    # DFR is fitted on the validation part: it cannot be chosen there, so it edits the last network.
    last = int(memorized.history.epoch.iloc[-1])
    assert table.loc["edited, dfr", "choice"] == f"epoch {last} (the last; fitted on validation)"
    assert recovery.recovery_name("edited, velpic") == "edited with VeLPIC" and recovery.recovery_name("VeLPIC") == "VeLPIC at its best layer"
    with pytest.raises(ValueError, match="Unknown probe.*choose from"):
        recovery.recovery_table(memorized, rewound, relabel_methods=[], probes=["svm"])
    with pytest.raises(ValueError, match="'masc' is not a linear readout"):
        recovery.recovery_table(memorized, rewound, relabel_methods=[], readouts=["masc"])


def test_recovery_summary_gives_mean_and_std_over_seeds(memorized, rewound):
    table = recovery.recovery_table(memorized, rewound, relabel_methods=[])
    other = table.assign(seed=1, **{"holdout accuracy": table["holdout accuracy"] + 0.1})
    stacked = pd.concat({"p = 0.6, seed 0": table, "p = 0.6, seed 1": other}, names=["run"])
    summary = recovery.recovery_summary(stacked)
    assert list(summary.columns) == ["p = 0.6"] and summary.index[0] == "memorized network"
    masc = table.loc["MASC", "holdout accuracy"]
    assert summary.loc["MASC at its best layer", "p = 0.6"] == prose.mean_std([masc, masc + 0.1]) and "±" in prose.mean_std([masc, masc + 0.1])
