"""Subspace measures on arrays with known answers: participation ratio, principal angles and their
random baselines, per-class geometry."""

import numpy as np
import pytest
from scipy.linalg import subspace_angles

from memnotebooks.subspaces import _random_cosines, class_geometry, participation_ratio, principal_angle_matrix, principal_angles, random_principal_angle_matrix


def test_participation_ratio_and_principal_angles_on_known_cases():
    rng = np.random.default_rng(0)
    assert participation_ratio(rng.normal(size=(5000, 1)) * [[1, 0, 0]]) == pytest.approx(1.0)
    # Isotropic in 4 dimensions: PR close to 4.
    assert participation_ratio(rng.normal(size=(20000, 4))) == pytest.approx(4.0, rel=0.02)
    e = np.eye(3)
    angles = principal_angle_matrix([e[:1], e[1:2], (e[:1] + e[1:2]) / np.sqrt(2)])
    np.testing.assert_allclose(angles, [[0, 90, 45], [90, 0, 45], [45, 45, 0]], atol=1e-8)
    a, b = np.linalg.qr(rng.normal(size=(6, 2)))[0].T, np.linalg.qr(rng.normal(size=(6, 3)))[0].T
    expected = np.degrees(subspace_angles(a.T, b.T)).mean()
    assert principal_angle_matrix([a, b])[0, 1] == pytest.approx(expected)


def test_class_geometry_finds_each_class_dimension():
    rng = np.random.default_rng(1)
    line = rng.normal(size=(300, 1)) * np.eye(5)[0]
    plane = rng.normal(size=(300, 2)) @ np.eye(5)[1:3]
    table = class_geometry(np.vstack([line, plane]), np.repeat([0, 1], 300))
    assert table.k.tolist() == [1, 2] and table.k_fraction.tolist() == [0.2, 0.4]
    assert table.mean_principal_angle.tolist() == pytest.approx([90, 90])
    assert table.participation_ratio[0] == pytest.approx(1.0)


def test_first_principal_angle_is_the_smallest_and_random_baseline_has_the_right_law():
    e = np.eye(4)
    # Planes sharing one axis: angles 0 and 90; the mean is 45, the first (smallest) 0.
    a, b = e[[0, 1]], e[[0, 2]]
    assert principal_angles(a, b).tolist() == pytest.approx([0, 90])
    assert principal_angle_matrix([a, b], "first")[0, 1] == pytest.approx(0)
    assert principal_angle_matrix([a, b], "mean")[0, 1] == pytest.approx(45)
    with pytest.raises(ValueError, match="Unknown statistic 'median'"):
        principal_angle_matrix([a, b], "median")
    # The Wishart (Bartlett) draw has the law of the direct one: mean sorted cosines agree.
    rng = np.random.default_rng(0)
    fast = np.mean([np.sort(_random_cosines(4, 6, 30, rng)) for _ in range(3000)], axis=0)
    direct = np.mean([np.sort(np.linalg.svd(np.linalg.qr(rng.standard_normal((30, 6)))[0][:4], compute_uv=False)) for _ in range(3000)], axis=0)
    np.testing.assert_allclose(fast, direct, atol=0.01)
    # Larger random subspaces in the same width come closer; subspaces that must meet (k_a + k_b > d) meet.
    small, large = (random_principal_angle_matrix([k, k], 400, "first")[0, 1] for k in (5, 80))
    assert large < small < 90
    assert random_principal_angle_matrix([6, 6], 10, "first")[0, 1] == pytest.approx(0, abs=1e-5)
    with pytest.raises(ValueError, match=r"\[1, n_features=10\]"):
        random_principal_angle_matrix([11, 2], 10)


def test_class_geometry_caps_k_by_the_points():
    rng = np.random.default_rng(2)
    # 8 points per class in 50 dimensions: k can be at most 8, whatever the width.
    X, y = np.abs(rng.normal(size=(16, 50))), np.repeat([0, 1], 8)
    table = class_geometry(X, y)
    assert (table.k_cap == 8).all() and (table.k <= 8).all()
    assert table.k_over_cap.tolist() == pytest.approx((table.k / 8).tolist())
    assert (table.first_principal_angle <= table.mean_principal_angle).all()
    assert (table.random_first_angle <= table.random_mean_angle).all()
