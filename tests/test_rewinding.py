"""Rewinding the last layers and the ways of recovering generalization, compared image by image."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from memnotebooks import rewinding, runs
from memnotebooks.data import validation_split
from memnotebooks.models import build_model, rewind, weight_layers
from memnotebooks.uncertainty import unpack_hits


def test_rewind_resets_exactly_the_last_layers():
    torch.manual_seed(0)
    final, early = build_model("mlp", (1, 8, 8), 10), build_model("mlp", (1, 8, 8), 10)
    layers = weight_layers(final)
    assert layers == ["fc1.0", "fc2.0", "fc3.0", "fc4.0", "classifier"]
    rewound = rewind(copy.deepcopy(final), early.state_dict(), 2)
    for key, value in rewound.state_dict().items():
        source = early if key.startswith(("fc4", "classifier")) else final
        assert torch.equal(value, source.state_dict()[key]), key
    with pytest.raises(ValueError, match=r"n_layers \(of the model's weight layers: fc1.0, .*\) must be an integer in \[0, 5\], got 6"):
        rewind(rewound, early.state_dict(), 6)


def test_rewinding_table(memorized):
    table = rewinding.rewinding_table(memorized, epochs=[2], depths=[0, 1, 5])
    assert list(table.layers_rewound) == [0, 1, 5] and list(table.first_rewound) == ["", "classifier", "fc1.0"]
    memorized_row, everything = table.iloc[0], table.iloc[2]
    assert memorized_row.test_accuracy == pytest.approx(memorized.summary["test_accuracy"], abs=1e-6)  # float32 history
    assert memorized_row.corrupted_accuracy_given > 0.9  # the memorized network fits its noise
    # Rewinding every layer is the epoch-2 network, which has not memorized the noise.
    early = runs.run(memorized.config, artifacts_dir=memorized.path.parent, device="cpu", progress=False).history.set_index("epoch").loc[2]
    assert everything.test_accuracy == pytest.approx(early.test_accuracy, abs=1e-6)
    assert everything.corrupted_accuracy_given < 0.5
    # The validation and holdout parts split the test set.
    n_validation = int(runs.test_parts(memorized.dataset)["test_validation"][1].sum())
    n_test = len(memorized.dataset.y_test)
    mixed = (table.test_validation_accuracy * n_validation + table.test_holdout_accuracy * (n_test - n_validation)) / n_test
    assert mixed.tolist() == pytest.approx(table.test_accuracy.tolist(), abs=1e-9)
    with pytest.raises(ValueError, match=r"depths \[6\] are out of range: mlp has 5 weight layers"):
        rewinding.rewinding_table(memorized, epochs=[2], depths=[6])


def test_rewinding_rows_carry_their_holdout_hits(memorized, rewound, holdout_hits):
    hits = rewound.hits.map(unpack_hits)
    assert (hits.map(len) == (~validation_split(memorized.dataset.y_test.numpy())).sum()).all()
    assert np.allclose(hits.map(np.mean), rewound.test_holdout_accuracy)
    # L = 0 is the memorized network; L = all (5) is the checkpoint, whose predictions the run kept.
    np.testing.assert_array_equal(unpack_hits(rewound[rewound.layers_rewound == 0].hits.iloc[0]), holdout_hits(memorized, memorized.summary["epochs"]))
    np.testing.assert_array_equal(unpack_hits(rewound[(rewound.layers_rewound == 5) & (rewound.epoch == 2)].hits.iloc[0]), holdout_hits(memorized, 2))


def test_rewinding_differences(rewound):
    table = rewinding.rewinding_differences(rewound)
    assert set(table.layers_rewound) == {1, 2, 3, 4} and set(table.reference) == {"memorized", "checkpoint"} and set(table.epoch) == {2, 5}
    accuracy = rewound.set_index(["epoch", "layers_rewound"]).test_holdout_accuracy
    for row in table.itertuples():
        reference = 0 if row.reference == "memorized" else 5
        assert row.difference == pytest.approx(accuracy[row.epoch, row.layers_rewound] - accuracy[row.epoch, reference])
        assert row.low <= row.difference <= row.high and row.sign == (1 if row.low > 0 else -1 if row.high < 0 else 0)
    assert (table.n_seeds == 1).all() and (table.n_images == len(unpack_hits(rewound.hits.iloc[0]))).all()
    with pytest.raises(ValueError, match="needs L = 0"):
        rewinding.rewinding_differences(rewound[rewound.layers_rewound > 0])
    verdicts = rewinding.rewinding_verdicts(table).set_index(["corruption_degree", "layers_rewound", "reference"])
    assert len(verdicts) == 8 and (verdicts.above + verdicts.level + verdicts.below == verdicts.epochs).all() and (verdicts.epochs == 2).all()
    row = table[(table.layers_rewound == 4) & (table.reference == "checkpoint")]
    assert verdicts.loc[(0.6, 4, "checkpoint"), "epochs level"] == sorted(row.epoch[row.sign == 0].tolist())


def test_rewinding_grid_rewinds_each_run_to_its_checkpoints_before_the_end(memorized, short):
    # short ends at epoch 3, its last checkpoint: that one is the memorized network itself, and left out.
    table = rewinding.rewinding_grid([short, memorized], depths=[0, 1, 5])
    assert table.groupby("max_epochs").epoch.unique().map(list).to_dict() == {3: [0, 1], 60: [0, 2, 5]}
    assert rewinding.rewinding_grid([short], epochs=[3, 1, 8], depths=[0, 1]).epoch.unique().tolist() == [1]
    with pytest.raises(ValueError, match="never checkpointed"):
        rewinding.rewinding_grid([memorized], epochs=[1])
    first = rewinding.rewinding_table(short, epochs=[0, 1], depths=[0, 1, 5])
    pd.testing.assert_frame_equal(table.iloc[: len(first)].reset_index(drop=True), first)
    shown = rewinding.rewinding_display(table)
    assert [t.index.name for t in shown] == ["p = 0.6, seed 0: L rewound"] * 2 and shown[0].columns.tolist() == [0, 1]
    assert shown[0].index.tolist() == [0, 1, 5] and shown[0].loc[1, 1] == round(first.set_index(["epoch", "layers_rewound"]).test_holdout_accuracy[1, 1], 3)
