"""The book's computed sentences: one formatter, comparison words from paired intervals."""

import re

import nbformat
import numpy as np
import pandas as pd
import pytest

from memnotebooks import book, prose, uncertainty
from memnotebooks.uncertainty import Difference, paired_bootstrap

CHAPTERS = book.chapters(book.Path(__file__).resolve().parents[1])


def test_formatting():
    assert prose.accuracy(0.72149) == "0.721" and prose.accuracy(-0.0001) == "0.000"
    assert prose.mean_std([0.71, 0.72, 0.73]) == "0.720\u00a0±\u00a00.010" and prose.mean_std([0.5]) == "0.500"
    assert prose.signed(0.0123) == "+0.012" and prose.signed(-0.0123) == "\u22120.012" and prose.signed(0.0001) == "0.000"
    assert prose.percent(0.642) == "64\u00a0%" and prose.listing(["a", "b", "c"]) == "a, b and c"
    assert prose.interval(Difference(0.012, 0.004, 0.02, 360, 3)) == "+0.012, 95\u00a0% interval +0.004 to +0.020"


def test_an_interval_reads_a_row_of_differences_as_a_difference():
    table = pd.DataFrame({"baseline": ["a", "b"], "difference": [0.012, -0.03], "low": [0.004, -0.05], "high": [0.02, -0.01], "sign": [1, -1]})
    expected = [prose.interval(Difference(r.difference, r.low, r.high, 1, 1)) for r in table.itertuples()]
    assert [prose.interval(r) for r in table.itertuples()] == expected == [prose.interval(row) for _, row in table.iterrows()]
    assert expected[1] == "\u22120.030, 95\u00a0% interval \u22120.050 to \u22120.010"


def test_show_each_displays_one_markdown_output_a_paragraph(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects: shown.extend(objects))
    prose.show_each(f"At $p = {p:g}$ it is so. " for p in (0.4, 0.8))
    prose.show("one", "", "two ")
    assert [m.data for m in shown] == ["At $p = 0.4$ it is so.", "At $p = 0.8$ it is so.", "one two"]


def test_choices_count_what_was_chosen():
    assert prose.choices(["fc1"] * 8 + ["fc2"]) == "`fc1` in 8 of 9 runs, `fc2` in 1"
    assert prose.choices(["fc1"] * 3) == "`fc1` in all 3 runs"
    assert prose.choices(["fc1"], code=False) == "fc1 in the one run"


def test_verbs_follow_the_interval():
    words = ("beats", "trails", "is level with")
    assert [prose.verb(Difference(e, lo, hi, 10, 1), *words) for e, lo, hi in [(0.1, 0.02, 0.2), (-0.1, -0.2, -0.01), (0.05, -0.01, 0.1)]] == list(words)
    with pytest.raises(ValueError, match="A sign is -1, 0 or 1; got 2"):
        prose.verb(2)


def test_the_paired_interval_is_narrower_than_unpaired_and_covers_the_truth():
    rng = np.random.default_rng(1)
    n = 360
    # b is right wherever a is, and on 8 more images in each seed: a 2.2-point gain, real but small.
    a = rng.random((3, n)) < 0.8
    b = a.copy()
    for seed in range(3):
        b[seed, np.flatnonzero(~a[seed])[:8]] = True
    d = paired_bootstrap(b, a)
    assert d.sign == 1 and d.low > 0 and d.n_images == n and d.n_seeds == 3
    # Unpaired (independent images for each), the same gain is not distinguishable from noise.
    unpaired = paired_bootstrap(b, a[:, rng.permutation(n)])
    assert unpaired.high - unpaired.low > 3 * (d.high - d.low)
    # Same seed, same interval; a different seed moves the ends by little.
    assert paired_bootstrap(b, a) == d and abs(paired_bootstrap(b, a, seed=5).low - d.low) < 0.003


def test_coverage_of_the_interval_under_a_null():
    # Two classifiers each right with probability 0.7 independently: the interval holds 0 in about 95 % of tests.
    rng = np.random.default_rng(0)
    held = [paired_bootstrap(rng.random((3, 200)) < 0.7, rng.random((3, 200)) < 0.7, n_resamples=2000, seed=i).sign == 0 for i in range(200)]
    assert 0.9 <= np.mean(held) <= 0.99


def test_bad_hits_are_refused():
    with pytest.raises(ValueError, match=r"hits_a must hold hits \(0/1 or booleans\); got values \[0.0, 0.5"):
        paired_bootstrap(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match=r"same shape \(same seeds, same images\); got \(1, 3\) and \(4,\)"):
        paired_bootstrap([1, 0, 1], [1, 0, 1, 1])
    with pytest.raises(ValueError, match="confidence must lie in"):
        paired_bootstrap([1, 0], confidence=95)


def test_hits_round_trip_as_text():
    hits = np.random.default_rng(0).random(361) < 0.5
    np.testing.assert_array_equal(uncertainty.unpack_hits(uncertainty.pack_hits(hits)), hits)
    with pytest.raises(ValueError, match="Not packed hits"):
        uncertainty.unpack_hits("0.71")


# A result typed into a markdown cell goes stale on another machine: every decimal or percentage in
# a chapter's prose must be computed, except these constants of the method and of the paper.
ALLOWED = {"0.99", "20 %", "80 %", "99.1 %", "99.9 %", "100 %", "0.5", "2.0"}
TYPED = re.compile(r"(?<![\w.\\/=-])(\d*\.\d+(?:\s?%)?|\d+\s?%)(?![\w.])")


def typed_results(text: str) -> list[str]:
    """Decimals and percentages in Markdown outside math, code and link targets."""
    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]*\$|`[^`\n]*`|\]\([^)]*\)|\{[a-z:]+\}`[^`]*`", " ", text, flags=re.S)
    return [m.group(1).replace("\u00a0", " ") for m in TYPED.finditer(text) if m.group(1).replace("\u00a0", " ") not in ALLOWED]


def test_the_detector_finds_typed_results():
    assert typed_results("MASC decodes 0.887 from `fc1` (64 % of points), $p = 0.4$, t = 0.99 and 20 %.") == ["0.887", "64 %"]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_no_chapter_types_a_result_in_its_prose(notebook):
    nb = nbformat.read(notebook, as_version=4)
    typed = {i: found for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown" and (found := typed_results(cell.source))}
    assert not typed, f"{notebook.name}: typed results in markdown cells (compute them with memnotebooks.prose): {typed}"
