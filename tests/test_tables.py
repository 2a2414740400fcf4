"""Tidy display tables: paired differences, their text and tables, and per-image hits."""

import numpy as np
import pandas as pd
import pytest

from memnotebooks import tables
from memnotebooks.uncertainty import Difference, pack_hits


def test_paired_differences_compare_rows_image_by_image():
    hits = {"a": np.r_[np.ones(90), np.zeros(10)].astype(bool), "b": np.r_[np.ones(60), np.zeros(40)].astype(bool)}
    rows = [{"baseline": name, "corruption_degree": 0.4, "seed": seed, "accuracy": h.mean(), "hits": pack_hits(h)}
            for seed in (0, 1) for name, h in hits.items()]
    rows.append({"baseline": "c", "corruption_degree": 0.4, "seed": 0, "accuracy": 0.9, "hits": pack_hits(hits["a"])})
    table = tables.paired_differences(pd.DataFrame(rows), "a").set_index("baseline")
    assert table.loc["b", "difference"] == pytest.approx(-0.3) and table.loc["b", "sign"] == -1 and table.loc["b", "n_seeds"] == 2
    assert table.loc["c", ["difference", "low", "high", "sign"]].tolist() == [0, 0, 0, 0]  # the same hits: no difference
    with pytest.raises(ValueError, match=r"No rows with baseline = 'z'; the table has: a, b, c"):
        tables.paired_differences(pd.DataFrame(rows), "z")


def test_difference_table_shows_each_difference_with_its_interval():
    differences = pd.DataFrame({"baseline": ["b", "a", "b"], "corruption_degree": [0.4, 0.4, 0.8], "difference": [0.0123, -0.3, 0.0001],
                                "low": [-0.0041, -0.35, -0.002], "high": [0.028, -0.25, 0.003], "sign": [0, -1, 0]})
    table = tables.difference_table(differences)
    assert table.index.tolist() == ["b", "a"] and table.columns.tolist() == ["p = 0.4", "p = 0.8"]
    assert table.loc["b", "p = 0.4"] == "+0.012\u00a0[\u22120.004,\u00a0+0.028]"
    assert table.loc["a", "p = 0.4"] == "\u22120.300\u00a0[\u22120.350,\u00a0\u22120.250]" and table.loc["a", "p = 0.8"] == ""
    assert table.loc["b", "p = 0.8"] == "0.000\u00a0[\u22120.002,\u00a0+0.003]"
    assert tables.difference_text(Difference(-0.0123, -0.02, -0.004, 360, 3)) == "\u22120.012\u00a0[\u22120.020,\u00a0\u22120.004]"
    with pytest.raises(ValueError, match="No differences to show"):
        tables.difference_table(differences.iloc[:0])


def test_hits_matrix_stacks_the_seeds_in_order():
    rows = pd.DataFrame({"baseline": ["a", "a", "b"], "corruption_degree": [0.4] * 3, "seed": [1, 0, 0],
                         "hits": [pack_hits(np.array([1, 1, 0], bool)), pack_hits(np.array([0, 0, 1], bool)), pack_hits(np.ones(3, bool))]})
    np.testing.assert_array_equal(tables.hits_matrix(rows, "a", 0.4), [[0, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match=r"No rows with baseline = 'a' at corruption_degree = 0.8"):
        tables.hits_matrix(rows, "a", 0.8)
