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
    # A row as a Series or as a tuple of itertuples reads the same.
    texts = [tables.difference_text(r) for r in differences.itertuples()]
    assert texts == [tables.difference_text(r) for _, r in differences.iterrows()] and texts[1] == table.loc["a", "p = 0.4"]
    with pytest.raises(ValueError, match="No differences to show"):
        tables.difference_table(differences.iloc[:0])


def test_hits_matrix_stacks_the_seeds_in_order():
    rows = pd.DataFrame({"baseline": ["a", "a", "b"], "corruption_degree": [0.4] * 3, "seed": [1, 0, 0],
                         "hits": [pack_hits(np.array([1, 1, 0], bool)), pack_hits(np.array([0, 0, 1], bool)), pack_hits(np.ones(3, bool))]})
    np.testing.assert_array_equal(tables.hits_matrix(rows, "a", 0.4), [[0, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match=r"No rows with baseline = 'a' at corruption_degree = 0.8"):
        tables.hits_matrix(rows, "a", 0.8)


def scores_of(accuracies: dict, n: int = 200, seeds=(0, 1)) -> pd.DataFrame:
    """A scores table (baseline, degree, seed, accuracy, hits): per (baseline, degree) an accuracy,
    its hits the first images of ``n``, the same in every seed."""
    rows = []
    for (baseline, degree), accuracy in accuracies.items():
        hits = np.arange(n) < round(accuracy * n)
        rows += [{"baseline": baseline, "corruption_degree": degree, "seed": seed, "accuracy": hits.mean(), "hits": pack_hits(hits)} for seed in seeds]
    return pd.DataFrame(rows)


def test_describe_signs_groups_the_rows_by_their_verdict():
    scores = scores_of({("ref", 0.4): 0.5, ("fc1", 0.4): 0.8, ("fc2", 0.4): 0.5, ("fc3", 0.4): 0.75, ("fc4", 0.4): 0.2})
    differences = tables.paired_differences(scores, "ref")
    assert differences.sign.tolist() == [1, 0, 1, -1]
    assert tables.describe_signs(differences, ("beats it", "is level with it", "falls below it")) == (
        "beats it in `fc1` and `fc3`, is level with it in `fc2` and falls below it in `fc4`")
    above = differences[differences.sign == 1]
    assert tables.describe_signs(above, every="every layer") == "is above in every layer" and tables.describe_signs(above) == "is above in `fc1` and `fc3`"


def test_describe_against_reads_each_degree_of_one_row():
    scores = scores_of({("MASC", 0.4): 0.5, ("net", 0.4): 0.8, ("MASC", 0.8): 0.5, ("net", 0.8): 0.5})
    differences = tables.paired_differences(scores, "MASC")
    shown = tables.difference_table(differences)
    text = tables.describe_against(scores, differences, "MASC", "net", [0.4, 0.8], what="MASC", above="beats")
    assert text == f"at $p = 0.4$ it beats MASC (0.800 against 0.500; {shown.loc['net', 'p = 0.4']}); at $p = 0.8$ it is level with MASC (0.500 against 0.500; {shown.loc['net', 'p = 0.8']})."
    assert tables.describe_against(scores, differences, "MASC", "net", [0.8]).startswith("at $p = 0.8$ it is level with the reference")
