"""The explorers: each draws its view, redraws it when a control moves, carries the image for a
page without a kernel, and shows a message (not a traceback) for a view it cannot draw."""

import base64
from unittest import mock

import numpy as np
import pytest

from memnotebooks import corruption, decoding, explorers, relabel
from memnotebooks.data import load_dataset, validation_split

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def image(explorer) -> bytes:
    (output,) = explorer.output.outputs
    return base64.b64decode(output["data"]["image/png"])


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_corruption_explorer_redraws_when_the_degree_moves(digits):
    explorer = explorers.corruption_explorer(digits.y_train, digits.n_classes, degree=0.6)
    assert explorer.message is None and image(explorer).startswith(b"\x89PNG")
    first = image(explorer)
    explorer.controls["degree"].value = 0.2
    assert explorer.message is None and image(explorer) != first
    bundle = explorer._repr_mimebundle_()
    # JupyterLab renders the widget view; a page without a kernel, the image of the current view.
    assert WIDGET_VIEW in bundle and base64.b64decode(bundle["image/png"]) == image(explorer)


def test_corruption_explorer_title_is_the_measured_share(digits):
    corrupted = corruption.corrupt_labels(digits.y_train, 0.4, digits.n_classes, seed=3)
    wrong = corruption.wrong_fraction(digits.y_train.numpy(), corrupted.labels)
    title = _view_axes(digits, degree=0.4, seed=3).get_title()
    assert f"{100 * wrong:.1f}\N{NO-BREAK SPACE}% wrong" in title and "expected 36.0\N{NO-BREAK SPACE}%" in title


def _view_axes(digits, **values):
    """The Axes the corruption explorer's view draws for ``values`` (before it is turned into an image)."""
    with mock.patch.object(explorers, "_figure_data", side_effect=lambda figure: {"figure": figure}):
        explorer = explorers.corruption_explorer(digits.y_train, digits.n_classes, **values)
    return explorer._data["figure"].axes[0]


def test_a_view_that_cannot_be_drawn_shows_a_message_and_the_controls_recover(digits):
    explorer = explorers.corruption_explorer(digits.y_train, digits.n_classes, mode="shuffled")
    assert explorer.message == "Unknown mode 'shuffled'; choose from: uniform, permute, random_inputs."
    (output,) = explorer.output.outputs
    assert "image/png" not in output["data"] and "shuffled" in output["data"]["text/plain"]
    explorer.controls["mode"].value = "permute"
    assert explorer.message is None and image(explorer)


def test_decoding_explorer_draws_the_layer_and_names_bad_choices(memorized):
    explorer = explorers.decoding_explorer([memorized])
    assert explorer.message is None and explorer.values["layer"] == decoding.hidden_layers(memorized)[0]
    first = image(explorer)
    explorer.controls["probe"].value = "nearest_mean"
    assert explorer.message is None and image(explorer) != first
    assert explorers.decoding_explorer([memorized], layer="fc9").message.startswith("Unknown layer 'fc9'; choose from: input, fc1")
    assert explorers.decoding_explorer([memorized], probe="svm").message.startswith("Unknown probe 'svm'; choose from: masc,")


def test_decoding_explorer_with_computing_off_names_what_is_not_cached(memorized):
    explorer = explorers.decoding_explorer([memorized], variance_threshold=0.75, compute=False, layer="fc2")
    assert explorer.message.startswith(f"Not in the cache of {memorized.path.name}: fc2 (MASC, corrupted labels)")
    decoding.layerwise_evaluation(memorized, layers=["fc2"], fit_labels=["corrupted"], variance_threshold=0.75)
    explorer.refresh()
    assert explorer.message is None


def test_test_angles_classify_as_masc_does(memorized):
    angles = decoding.test_angles(memorized, "fc1")
    y_test = memorized.dataset.y_test.numpy()
    n_holdout = int((~validation_split(y_test)).sum())
    assert len(angles) == 2 * n_holdout and angles.angle.between(0, 90).all()
    to_true, to_other = (angles[angles.subspace == s].angle.to_numpy() for s in ("true class", "nearest other class"))
    evaluation = decoding.layerwise_evaluation(memorized, layers=["fc1"], fit_labels=["corrupted"])
    holdout = evaluation[(evaluation.split == "test_holdout") & (evaluation.target == "true")].accuracy.iloc[0]
    # Right exactly when the true class's subspace is the nearest (ties aside: none in float data).
    assert (to_true < to_other).mean() == pytest.approx(holdout, abs=0.5 / n_holdout)
    with pytest.raises(ValueError, match="Unknown split 'train'; choose from: test, test_validation, test_holdout"):
        decoding.test_angles(memorized, "fc1", split="train")


def test_epoch_explorer_moves_through_the_checkpoints(memorized):
    explorer = explorers.epoch_explorer([memorized])
    assert list(explorer.controls["epoch"].options) == [0, 2, 5] and explorer.message is None
    first = image(explorer)
    explorer.controls["epoch"].value = 5
    assert explorer.message is None and image(explorer) != first
    assert explorers.epoch_explorer([memorized], epoch=3).message == "Unknown epoch (checkpointed by every run) 3; choose from: 0, 2, 5."


def test_relabel_explorer_shows_the_methods_of_its_table(memorized):
    settings = {"max_epochs": 2}
    table = relabel.relabel_table(memorized, ["early_stopped", "masc_corrupted"], **settings)
    explorer = explorers.relabel_explorer([memorized], table, method="masc_corrupted", **settings)
    assert explorer.message is None and [v for _, v in explorer.controls["method"].options] == ["masc_corrupted"]
    labels = relabel.relabelled_labels(memorized, "masc_corrupted", **settings)
    assert np.isin(labels.new_label, np.arange(memorized.dataset.n_classes)).all()
    assert explorers.relabel_explorer([memorized], table, method="cleanlab", **settings).message.startswith("Unknown method (of this table) 'cleanlab'")
