"""The table of claims (memnotebooks.holds): the verdict rules, the registry, the chapters'
defaults it reads, the overrides it refuses, and a claim evaluated on tiny runs."""

import matplotlib

matplotlib.use("Agg")

import nbformat
import numpy as np
import pandas as pd
import pytest

from memnotebooks import book, holds
from memnotebooks.tables import paired_differences
from memnotebooks.uncertainty import pack_hits

BOOK = holds.BOOK_DIR


def scores(degrees_and_hits: dict) -> pd.DataFrame:
    """A tidy table of two rows ("a", "b") per degree, seeds 0-1, from hit rates: each degree maps
    to (rate of a, rate of b) on 300 images, b's hits a subset of a's where a is higher."""
    rows = []
    for degree, (rate_a, rate_b) in degrees_and_hits.items():
        for seed in (0, 1):
            order = np.random.default_rng(seed).permutation(300)
            for name, rate in (("a", rate_a), ("b", rate_b)):
                hits = np.zeros(300, dtype=bool)
                hits[order[: int(rate * 300)]] = True
                rows.append({"baseline": name, "corruption_degree": degree, "seed": seed, "accuracy": hits.mean(), "hits": pack_hits(hits)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "rates, expected",
    [
        ({0.4: (0.9, 0.6), 0.8: (0.7, 0.4)}, "holds"),  # a above b at every degree
        ({0.4: (0.9, 0.6), 0.8: (0.5, 0.5)}, "holds in part"),  # at one degree only
        ({0.4: (0.6, 0.6), 0.8: (0.3, 0.7)}, "does not hold here"),  # level, then below
    ],
)
def test_the_verdict_follows_the_signs_of_paired_differences(rates, expected):
    differences = paired_differences(scores(rates), "b", others=["a"])
    assert holds.verdict(differences.sign) == expected
    # The same comparison the other way round, claimed to go down, gets the same verdict.
    assert holds.verdict(paired_differences(scores(rates), "a", others=["b"]).sign, claimed=-1) == expected


def test_the_verdict_rules_on_signs():
    assert holds.verdict([1, 1, 1]) == "holds"
    assert holds.verdict([1, 0, -1]) == "holds in part"
    assert holds.verdict([0, 0]) == "does not hold here"
    assert holds.verdict([-1, -1]) == "does not hold here"
    assert holds.verdict([-1, -1], claimed=-1) == "holds"
    assert holds.verdict([]) == "not tested here"
    assert set(holds.VERDICTS) == {"holds", "holds in part", "does not hold here", "not tested here"}
    with pytest.raises(ValueError, match="A sign is -1, 0 or 1"):
        holds.verdict([2])
    with pytest.raises(ValueError, match="claimed"):
        holds.verdict([1], claimed=0)
    with pytest.raises(ValueError, match="A verdict is one of"):
        holds.Finding("mostly", "")


def test_every_claim_names_a_paper_a_chapter_and_a_section_that_exist():
    keys = [claim.key for claim in holds.CLAIMS]
    assert len(keys) == len(set(keys))
    for claim in holds.CLAIMS:
        assert claim.paper in holds.PAPERS, claim.key
        notebook = BOOK / f"{claim.chapter}.ipynb"
        assert notebook.exists(), f"{claim.key}: no chapter {notebook.name}"
        assert claim.section in holds.chapter_headings(notebook), f"{claim.key}: no heading {claim.section!r} in {notebook.name}"
        assert callable(claim.evaluate) and claim.claim.endswith(".") and len(claim.claim) <= 200 and 0 < len(claim.label) <= 40
    # The table groups the claims by paper, in PAPERS' order.
    ordered = [holds.PAPERS[c.paper] for c in holds._ordered(holds.CLAIMS)]
    assert ordered == sorted(ordered, key=list(holds.PAPERS.values()).index)
    assert {c.paper for c in holds.CLAIMS} >= {"ketha2025", "arpit2017", "stephenson2021"}


def test_a_section_link_uses_the_heading_anchor_myst_writes():
    pytest.importorskip("myst_parser")
    from myst_parser.mdit_to_docutils.base import default_slugify

    for claim in holds.CLAIMS:
        assert holds.slug(claim.section) == default_slugify(claim.section)
    assert holds.section_link("09_manifold_geometry", "Rewinding the last layers") == "[9. Rewinding the last layers](09_manifold_geometry.ipynb#rewinding-the-last-layers)"


def tiny_chapter(path, source: str, headings=("## A section",)):
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})
    cells = [nbformat.v4.new_markdown_cell("# 2. Tiny"), cell, *(nbformat.v4.new_markdown_cell(h) for h in headings)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}), path)
    return path


def test_a_chapters_defaults_are_read_as_values(tmp_path):
    path = tiny_chapter(tmp_path / "02_training.ipynb", 'degrees = [0.0, 0.4]  # degrees\nmodel = "mlp"\nsubset = None\nregularizers = [{"dropout": 0.2}]\nmethods = ["a",\n           "b"]  # two lines')
    assert holds.chapter_defaults(path) == {"degrees": [0.0, 0.4], "model": "mlp", "subset": None, "regularizers": [{"dropout": 0.2}], "methods": ["a", "b"]}
    assert holds.chapter_headings(path) == ["2. Tiny", "A section"]
    for chapter in ("05_masc_decoding", "09_manifold_geometry"):
        defaults = holds.chapter_defaults(BOOK / f"{chapter}.ipynb")
        assert set(defaults) == book.chapter_parameters(BOOK / f"{chapter}.ipynb")
        assert isinstance(defaults["degrees"], list) and defaults["subset"] is None


def test_overrides_reach_the_chapters_that_declare_them_and_others_are_refused():
    context = holds.Context({"dataset": "fashion_mnist", "subset": 4000, "tolerance": 5.0})
    assert context.parameters("05_masc_decoding")["dataset"] == "fashion_mnist"
    assert context.parameters("05_masc_decoding")["subset"] == 4000
    assert context.parameters("07_reproducing_the_paper")["tolerance"] == 5.0 and "dataset" not in context.parameters("07_reproducing_the_paper")
    assert context.config("09_manifold_geometry", checkpoints=True).checkpoint_epochs == tuple(context.parameters("09_manifold_geometry")["checkpoint_epochs"])
    with pytest.raises(ValueError, match=r"declares the parameter\(s\) datset; they declare: .*dataset"):
        holds.Context({"datset": "fashion_mnist"})
    with pytest.raises(ValueError, match="device is a keyword of the table"):
        holds.Context({"device": "cpu"})
    with pytest.raises(TypeError, match="Parameter degrees of .* takes a list of numbers"):
        holds.Context({"degrees": "[0.4]"})
    with pytest.raises(ValueError, match="No claim reads chapter"):
        context.parameters("01_corruption")


def test_claims_evaluated_on_tiny_runs_give_a_table_a_figure_and_a_sentence(memorized_runs, tmp_path):
    # A chapter 02 and 05 whose defaults are the conftest runs (CNN, 600 digits, 15 epochs), so
    # that the grid is read from their cache.
    run_settings = 'dataset = "digits"\nmodel = "cnn"\ndegrees = [0.0, 0.6]\nseeds = [0]\nmax_epochs = 15\nsubset = 600\ntest_subset = None\n'
    tiny_chapter(tmp_path / "02_training.ipynb", run_settings, headings=["## Memorization: the training labels are fit, the test set is not"])
    tiny_chapter(tmp_path / "05_masc_decoding.ipynb", run_settings + 'variance_threshold = 0.99\nprobes = ["nearest_mean"]', headings=["## The headline and its baselines"])
    claims = [c for c in holds.CLAIMS if c.key in ("memorization", "masc_beats_network")]
    context = holds.Context(book_dir=tmp_path, claims=claims, artifacts_dir=memorized_runs[0].path.parent, device="cpu")
    assert [r.path for r in context.grid("02_training")] == [r.path for r in memorized_runs]
    # Chapter 05's baseline scores (slow to compute) stand in as a synthetic table: MASC above the network at p = 0.6.
    synthetic = scores({0.0: (0.9, 0.9), 0.6: (0.8, 0.5)}).replace({"baseline": {"a": "MASC, hidden, corrupted (validated)", "b": "network, final"}})
    context.result("05 scores", lambda: synthetic)
    table = holds.claims_table(context=context, claims=claims)
    assert list(table.index) == ["memorization", "masc_beats_network"] and list(table.columns) == ["paper", "claim", "verdict", "number", "section", "label"]
    assert table.verdict.isin(holds.VERDICTS).all() and (table.paper == "Ketha & Ramaswamy (2025)").all()
    fitted = memorized_runs[1].summary["reached_target"]
    assert f"{int(fitted)} of 1 runs reach the training target" in table.number["memorization"]
    assert table.verdict["masc_beats_network"] == "holds"  # only the corrupted degree is compared
    assert table.number["masc_beats_network"].startswith("$p = 0.6$: MASC 0.800 vs network 0.500 (+0.300")
    assert table.section["memorization"] == "[2. Memorization: the training labels are fit, the test set is not](02_training.ipynb#memorization-the-training-labels-are-fit-the-test-set-is-not)"
    shown = holds.markdown_table(table)
    assert shown.count("\n") == 1 + len(table) and shown.count("**Ketha & Ramaswamy (2025)**") == 1
    effects = holds.claims_effects(context, claims)
    assert list(effects.comparison) == ["p = 0.6", "p = 0.6"] and (effects.low <= effects.difference).all() and (effects.difference <= effects.high).all()
    assert effects.difference.iloc[1] == pytest.approx(0.3)
    assert holds.effects_plot(effects).get_xlabel().startswith("accuracy difference")
    bars = holds.verdict_plot(table)
    assert [t.get_text() for t in bars.get_yticklabels()] == ["Ketha & Ramaswamy (2025)"] and len(bars.patches) == len(holds.VERDICTS)
    counts = holds.verdict_counts(table)
    assert list(counts.columns) == list(holds.VERDICTS) and counts.values.sum() == 2
    assert holds.verdict_summary(table).startswith("Ketha & Ramaswamy (2025): of 2 claims, ")


def test_the_summary_counts_the_verdicts_per_paper_and_names_the_claims_that_fall_short():
    table = pd.DataFrame({"paper": ["A", "A", "A", "B"], "verdict": ["holds", "holds", "does not hold here", "holds in part"], "label": ["w", "x", "y", "z"]})
    assert holds.verdict_counts(table).loc["A"].tolist() == [2, 0, 1, 0]
    assert holds.verdict_summary(table) == "A: of 3 claims, 2 hold and 1 does not hold here. B: its one claim holds in part. Holds in part: *z*. Does not hold here: *y*."
