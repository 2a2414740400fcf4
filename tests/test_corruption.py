import numpy as np
import pytest
import torch
from scipy.stats import binom

from memnotebooks.corruption import corrupt_labels, corruption_table, randomize_inputs, wrong_fraction

N, C = 20_000, 10
LABELS = np.random.default_rng(123).integers(0, C, size=N)


def binomial_bounds(n, p, alpha=1e-6):
    """Two-sided bounds on a binomial proportion that a correct sampler exceeds with probability < alpha."""
    return binom.ppf(alpha / 2, n, p) / n, binom.isf(alpha / 2, n, p) / n


@pytest.mark.parametrize("degree", [0.1, 0.4, 0.8, 1.0])
def test_uniform_statistics_within_binomial_bounds(degree):
    labels, mask = corrupt_labels(LABELS, degree, C, seed=7)
    low, high = binomial_bounds(N, degree)
    assert low <= mask.mean() <= high
    expected_wrong = degree * (C - 1) / C
    low, high = binomial_bounds(N, expected_wrong)
    assert low <= wrong_fraction(LABELS, labels) <= high
    # Unselected points keep their labels; selected ones are uniform over the classes.
    np.testing.assert_array_equal(labels[~mask], LABELS[~mask])
    counts = np.bincount(labels[mask], minlength=C) / mask.sum()
    low, high = binomial_bounds(int(mask.sum()), 1 / C)
    assert np.all((counts >= low) & (counts <= high))


def test_same_seed_same_labels_other_seed_differs():
    a, b, c = (corrupt_labels(LABELS, 0.5, C, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.mask, c.mask)


def test_degree_zero_leaves_labels_unchanged():
    labels, mask = corrupt_labels(torch.as_tensor(LABELS), 0.0, C, seed=1)
    np.testing.assert_array_equal(labels, LABELS)
    assert not mask.any()


def test_corrupted_sets_are_nested_across_degrees():
    low, high = corrupt_labels(LABELS, 0.2, C, seed=5), corrupt_labels(LABELS, 0.6, C, seed=5)
    assert np.all(high.mask[low.mask])
    np.testing.assert_array_equal(low.labels[low.mask], high.labels[low.mask])


def test_permute_keeps_the_label_histogram():
    labels, mask = corrupt_labels(LABELS, 0.7, C, seed=2, mode="permute")
    np.testing.assert_array_equal(np.bincount(labels, minlength=C), np.bincount(LABELS, minlength=C))
    np.testing.assert_array_equal(labels[~mask], LABELS[~mask])
    low, high = binomial_bounds(N, 0.7 * (C - 1) / C, alpha=1e-4)
    assert low <= wrong_fraction(LABELS, labels) <= high


def test_random_inputs_keeps_labels_and_replaces_masked_inputs_with_matching_noise():
    labels, mask = corrupt_labels(LABELS[:4000], 0.5, C, seed=0, mode="random_inputs")
    np.testing.assert_array_equal(labels, LABELS[:4000])
    x = torch.rand(4000, 2, 4, 4) * torch.tensor([1.0, 3.0]).view(1, 2, 1, 1) + 5
    noisy = randomize_inputs(x, mask, seed=0)
    keep = torch.from_numpy(~mask)
    assert torch.equal(noisy[keep], x[keep])
    replaced = noisy[~keep]
    assert not torch.isclose(replaced, x[~keep]).all()
    torch.testing.assert_close(replaced.mean(dim=(0, 2, 3)), x.mean(dim=(0, 2, 3)), atol=0.05, rtol=0)
    torch.testing.assert_close(replaced.std(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)), atol=0.05, rtol=0)
    assert torch.equal(randomize_inputs(x, mask, seed=0), noisy)


def test_corruption_table_reports_degree_and_measured_fraction():
    table = corruption_table(LABELS, C, [0.0, 0.5], seeds=[0, 1], modes=["uniform", "permute"])
    assert len(table) == 8
    uniform = table[(table["mode"] == "uniform") & (table.corruption_degree == 0.5)]
    assert np.allclose(uniform.expected_wrong_fraction, 0.45)
    assert np.all(np.abs(uniform.wrong_fraction - 0.45) < 0.02)
    assert table[table.corruption_degree == 0.0].wrong_fraction.eq(0).all()


@pytest.mark.parametrize("degree", [-0.1, 1.5, "0.5", None, True, float("nan")])
def test_bad_degree_is_rejected_with_its_value(degree):
    with pytest.raises(ValueError, match=r"corruption degree must be a number in \[0, 1\]"):
        corrupt_labels(LABELS, degree, C)


def test_bad_mode_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="'flip'.*uniform, permute, random_inputs"):
        corrupt_labels(LABELS, 0.2, C, mode="flip")


def test_labels_outside_the_classes_are_rejected():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        corrupt_labels(np.array([0, 1, 5]), 0.2, 3)


def test_nesting_holds_with_the_same_label_for_uniform_only():
    from memnotebooks.corruption import nesting

    uniform = nesting(LABELS, 0.2, 0.4, C, seed=3)
    assert uniform["selected_low"] > 0 and uniform["also_selected"] == uniform["same_label"] == uniform["selected_low"]
    permute = nesting(LABELS, 0.2, 0.4, C, seed=3, mode="permute")
    assert permute["also_selected"] == permute["selected_low"]
    # A fresh shuffle of the larger set keeps a point's label only about as often as chance does.
    assert permute["same_label"] < 0.2 * permute["also_selected"]


def test_share_spread_matches_the_binomial_for_uniform_corruption():
    from memnotebooks.corruption import share_spread

    labels, _ = corrupt_labels(LABELS, 0.6, C, seed=4)
    spread = share_spread(LABELS, labels, 0.6, C)
    assert spread["off_share"] == pytest.approx(0.06) and spread["diagonal_share"] == pytest.approx(0.46)
    assert spread["off_sd"] == pytest.approx(np.sqrt(0.06 * 0.94 / (N / C)), rel=0.01)
    # 90 off-diagonal cells: their RMS deviation from q is the binomial sd, within sampling error.
    assert 0.7 * spread["off_sd"] < spread["off_measured"] < 1.3 * spread["off_sd"]
    # Labels that favour one wrong class stray far beyond it.
    biased = np.where(LABELS == 0, 1, LABELS)
    assert share_spread(LABELS, biased, 0.6, C)["off_measured"] > 5 * spread["off_sd"]


def test_expected_gap_and_summary_of_the_wrong_fraction():
    from memnotebooks.corruption import expected_gap, wrong_fraction_summary

    table = corruption_table(LABELS, C, [0.0, 0.5], seeds=[0, 1, 2], modes=["uniform", "permute"])
    gap = expected_gap(table, N)
    assert list(gap.index) == [0.0, 0.5] and gap.loc[0.0, "z"] == 0
    assert gap.loc[0.5, "sd"] == pytest.approx(np.sqrt(0.45 * 0.55 / (3 * N)))
    assert abs(gap.loc[0.5, "z"]) < 5
    text = wrong_fraction_summary(table)
    assert list(text.index) == ["uniform", "permute", "expected p(C-1)/C"] and list(text.columns) == ["p = 0", "p = 0.5"]
    assert text.loc["expected p(C-1)/C", "p = 0.5"] == "0.450" and "\u00b1" in text.loc["uniform", "p = 0.5"]
    with pytest.raises(ValueError, match="needs the 'uniform' rows"):
        expected_gap(table[table["mode"] == "permute"], N)


def test_the_label_matrix_colour_scale_can_stop_at_its_largest_cell():
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from memnotebooks import plotting

    labels, _ = corrupt_labels(LABELS[:2000], 0.6, C, seed=0)
    frame = pd.DataFrame({"true_label": LABELS[:2000], "given_label": labels})
    largest = pd.crosstab(frame.true_label, frame.given_label, normalize="index").to_numpy().max()
    capped = plotting.label_matrix(frame, vmax=None, annotate=True)
    assert capped.collections[0].get_clim() == (0, pytest.approx(largest)) and len(capped.texts) == C * C
    assert plotting.label_matrix(frame).collections[0].get_clim() == (0, 1)
