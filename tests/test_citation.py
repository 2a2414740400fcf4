"""CITATION.cff cites the project and, among its references, the papers the book reproduces, with
the titles references.bib gives them."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REPRODUCED = ["ketha2025decoding", "ketha2026dynamics", "arpit2017closer", "stephenson2021geometry"]


def bib_titles() -> dict:
    text = (ROOT / "references.bib").read_text()
    entries = re.findall(r"@\w+\{(\w+),(.*?)\n\}", text, re.S)
    titles = {key: re.search(r"title\s*=\s*\{(.*?)\},?\n", body).group(1) for key, body in entries}
    return {key: title.replace("\\&", "&").replace("{", "").replace("}", "") for key, title in titles.items()}


def test_citation_file_names_the_project_and_the_reproduced_papers():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["version"] == re.search(r'version = "(.*?)"', (ROOT / "pyproject.toml").read_text()).group(1)
    cited = {reference["title"] for reference in citation["references"]}
    titles = bib_titles()
    assert {titles[key] for key in REPRODUCED} <= cited, {titles[key] for key in REPRODUCED} - cited
