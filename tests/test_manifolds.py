"""Mean-field manifold analysis: checked against cases with known answers and against brute force."""

import numpy as np
import pytest

from memnotebooks.manifolds import capacity_validation, gaussian_clouds as clouds, manifold_analysis, set_capacity as harmonic, simulated_capacity


def test_point_manifolds_have_capacity_two_radius_and_dimension_zero():
    X, labels = clouds(20, 3, 50, radius=0.0)  # three coincident points per manifold
    table = manifold_analysis(X, labels, n_t=2000)
    assert list(table.columns) == ["label", "n_points", "capacity", "radius", "dimension"]
    assert (table.n_points == 3).all() and (table.radius == 0).all() and (table.dimension == 0).all()
    # 1 / <max(t, 0)²> = 2 for a standard normal t: the Monte Carlo error of 2,000 draws is ~3 %.
    assert harmonic(table.capacity) == pytest.approx(2, rel=0.03)


def test_random_points_are_separable_up_to_cover_s_bound():
    X, labels = clouds(24, 1, 40, radius=0.0)
    assert simulated_capacity(X, labels, n_dichotomies=60) == pytest.approx(2, rel=0.1)


@pytest.mark.parametrize("radius", [0.3, 1.0])
def test_theory_matches_the_simulated_capacity_of_clouds(radius):
    X, labels = clouds(30, 6, 100, radius)
    table = manifold_analysis(X, labels, n_t=400)
    # Larger manifolds are harder to separate: capacity falls below the points' 2.
    assert harmonic(table.capacity) < 1.6
    # The radius is measured in units of the centre's norm, as the clouds were drawn.
    assert table.radius.mean() == pytest.approx(radius, rel=0.35)
    # Within 4 % when this was written (P = 30 manifolds: the bisection's steps of P/N are ~3 %).
    assert harmonic(table.capacity) == pytest.approx(simulated_capacity(X, labels, n_dichotomies=40), rel=0.1)


def test_bigger_manifolds_have_lower_capacity_and_more_dimensions():
    small = manifold_analysis(*clouds(10, 15, 60, radius=0.2), n_t=300)
    large = manifold_analysis(*clouds(10, 15, 60, radius=1.0), n_t=300)
    assert harmonic(large.capacity) < harmonic(small.capacity)
    assert large.radius.mean() > small.radius.mean() and large.dimension.mean() > small.dimension.mean()


def test_same_seed_same_table_and_bad_input():
    X, labels = clouds(5, 6, 20, radius=0.5)
    assert manifold_analysis(X, labels, seed=3).equals(manifold_analysis(X, labels, seed=3))
    assert not manifold_analysis(X, labels, seed=3).equals(manifold_analysis(X, labels, seed=4))
    with pytest.raises(ValueError, match=r"at least 2 points; class\(es\) \[5\] have \[1\]"):
        manifold_analysis(np.vstack([X, X[:1]]), np.append(labels, 5))
    with pytest.raises(ValueError, match=r"at least 2 manifolds \(classes\); got 1"):
        manifold_analysis(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="one label per point"):
        manifold_analysis(X, labels[:-1])
    with pytest.raises(ValueError, match="n_t must be an integer >= 2, got 1"):
        manifold_analysis(X, labels, n_t=1)
    with pytest.raises(ValueError, match="n_dichotomies must be an integer >= 1, got 0"):
        simulated_capacity(X, labels, n_dichotomies=0)


def test_capacity_validation_table():
    cases = [
        {"case": "points", "n_manifolds": 12, "n_points": 2, "n_features": 30, "radius": 0.0, "expected": 2.0},
        {"case": "single points", "n_manifolds": 12, "n_points": 1, "n_features": 20, "radius": 0.0, "expected": 2.0},
    ]
    table = capacity_validation(cases, n_t=500, n_dichotomies=20)
    assert list(table.case) == ["points", "single points"] and list(table.P) == [12, 12]
    assert table["mean-field"][0] == pytest.approx(2, rel=0.1) and np.isnan(table["mean-field"][1])
    assert table.simulated.tolist() == pytest.approx([2, 2], rel=0.35)  # 12 manifolds: coarse steps of P/N
