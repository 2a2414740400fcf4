import json
import os

import numpy as np
import pandas as pd
import pytest

from memnotebooks import store
from memnotebooks.store import atomic_write, cached_table, is_cached, normalize, recipe_key


def test_keys_normalize_numbers_and_ignore_defaulted_fields():
    assert recipe_key("run", {"lr": 1, "seed": 0}) == recipe_key("run", {"seed": np.int64(0), "lr": 1.0})
    assert recipe_key("run", {"epochs": (0, 2)}) == recipe_key("run", {"epochs": [np.int32(0), 2.0]})
    assert recipe_key("run", {"lr": 1e-3}) != recipe_key("run", {"lr": 2e-3})
    assert recipe_key("run", {"seed": 0}) != recipe_key("evaluation", {"seed": 0})
    # A new field at its default leaves the key as it was; set to anything else, it changes it.
    assert recipe_key("run", {"seed": 0, "dropout": 0.0}, {"dropout": 0.0}) == recipe_key("run", {"seed": 0})
    assert recipe_key("run", {"seed": 0, "dropout": 0.5}, {"dropout": 0.0}) != recipe_key("run", {"seed": 0})


def test_the_cache_version_is_part_of_every_key(monkeypatch):
    before = recipe_key("run", {"seed": 0})
    monkeypatch.setattr(store, "CACHE_VERSION", store.CACHE_VERSION + 1)
    assert recipe_key("run", {"seed": 0}) != before


def test_normalize_rejects_what_it_cannot_key():
    assert normalize({"b": True, "a": np.float64(0.5)}) == {"a": 0.5, "b": True}
    with pytest.raises(TypeError, match="Cannot use .*object.* in a cache key"):
        normalize({"model": object()})


def test_atomic_write_of_a_file_and_a_folder(tmp_path):
    atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("one"))
    atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("two"))
    assert (tmp_path / "a.txt").read_text() == "two"

    def folder(content):
        def write(tmp):
            tmp.mkdir()
            (tmp / "x").write_text(content)
        return write

    atomic_write(tmp_path / "run", folder("first"))
    # A second writer of the same folder (a concurrent shard) finds it done: the first one stays.
    atomic_write(tmp_path / "run", folder("second"))
    assert (tmp_path / "run" / "x").read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "run"]


def test_an_interrupted_write_leaves_nothing(tmp_path):
    def interrupted(tmp):
        tmp.mkdir()
        (tmp / "half").write_text("...")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "run", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_cached_table_computes_once_and_reads_text_as_text(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"fit_labels": ["true", "corrupted"], "accuracy": [0.5, 0.25]})

    recipe = {"probe": "masc", "variance_threshold": 0.99}
    assert not is_cached(tmp_path, "evaluation", recipe)
    first = cached_table(tmp_path, "evaluation", recipe, compute)
    again = cached_table(tmp_path, "evaluation", {"variance_threshold": 0.99, "probe": "masc"}, compute)
    assert calls == [1] and is_cached(tmp_path, "evaluation", recipe)
    pd.testing.assert_frame_equal(first, again)
    assert again.fit_labels.tolist() == ["true", "corrupted"]  # not parsed as booleans
    (folder,) = tmp_path.iterdir()
    assert json.loads((folder / "recipe.json").read_text())["recipe"] == recipe
    cached_table(tmp_path, "evaluation", {**recipe, "variance_threshold": 0.5}, compute)
    assert calls == [1, 1]
