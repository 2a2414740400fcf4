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
