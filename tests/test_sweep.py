"""Batch runs of the chapters: expansion, sharding, bad input, and a real sweep killed and resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from memnotebooks import sweep
from memnotebooks.store import git_commit

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_expand_orders_grid_points_and_chapters(tmp_path):
    spec = sweep.load_sweep(write(tmp_path / "s.yaml", "name: s\nchapters: [01_corruption, 02_training]\nparameters: {seeds: [0]}\ngrid:\n  degrees: [[0.2], [0.4]]\n"))
    jobs = sweep.expand(spec, ROOT, tmp_path / "runs")
    assert [(job.chapter.stem, job.output.name) for job in jobs] == [
        ("01_corruption", "degrees=0.2.ipynb"), ("02_training", "degrees=0.2.ipynb"),
        ("01_corruption", "degrees=0.4.ipynb"), ("02_training", "degrees=0.4.ipynb"),
    ]
    assert all(job.parameters["seeds"] == [0] for job in jobs)
    # Chapters that keep runs share the sweep's cache; chapter 01 keeps none and gets no such parameter.
    assert {job.parameters.get("artifacts_dir") for job in jobs[1::2]} == {str((tmp_path / "runs" / "s" / "artifacts").resolve())}
    assert all("artifacts_dir" not in job.parameters for job in jobs[::2])


def test_shards_cover_the_sweep_exactly_once(tmp_path):
    spec = sweep.load_sweep(write(tmp_path / "s.yaml", "chapters: [02_training]\ngrid:\n  degrees: [[0.2], [0.4], [0.6]]\n  seeds: [[0], [1]]\n"))
    jobs = sweep.expand(spec, ROOT, tmp_path)
    shards = [sweep.shard(jobs, i, 4) for i in range(4)]
    outputs = [job.output for part in shards for job in part]
    assert sorted(outputs) == sorted(job.output for job in jobs) and len(set(outputs)) == len(jobs)
    assert all(part for part in shards)
    for text in ("4/4", "1", "-1/2", "a/b"):
        with pytest.raises(ValueError, match=rf"--shard takes i/n with 0 <= i < n .*got '{text}'"):
            sweep.parse_shard(text)


def test_bad_sweep_files(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown chapter\(s\) \['02_trainning'\]; the book has: 01_corruption, 02_training"):
        sweep.expand(sweep.load_sweep(write(tmp_path / "a.yaml", "chapters: [02_trainning]\n")), ROOT, tmp_path)
    with pytest.raises(ValueError, match=r"Chapter 01_corruption has no parameter\(s\) \['probe_degree'\]; it declares: .*example_degree"):
        sweep.expand(sweep.load_sweep(write(tmp_path / "b.yaml", "chapters: [01_corruption]\ngrid: {probe_degree: [0.2]}\n")), ROOT, tmp_path)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['grids'\]"):
        sweep.load_sweep(write(tmp_path / "c.yaml", "grids: {seeds: [[0]]}\n"))
    with pytest.raises(ValueError, match="grid values of 'seeds' must be a non-empty list, got 0"):
        sweep.load_sweep(write(tmp_path / "d.yaml", "grid: {seeds: 0}\n"))
    with pytest.raises(ValueError, match=r"e.yaml is not valid YAML"):
        sweep.load_sweep(write(tmp_path / "e.yaml", "grid: {seeds: [0\n"))


def test_a_missing_sweep_file_is_named_without_a_traceback(tmp_path, capsys):
    write(tmp_path / "paper.yaml", "chapters: [01_corruption]\n")
    with pytest.raises(SystemExit) as exit_:
        sweep.main([str(tmp_path / "missing.yaml")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert f"No sweep file '{tmp_path / 'missing.yaml'}'; {tmp_path} holds: paper.yaml" in err


def start_time(notebook: Path) -> str:
    return nbformat.read(notebook, as_version=4).metadata.papermill.start_time


@pytest.mark.notebooks
def test_a_sweep_killed_midway_resumes_without_running_anything_twice(tmp_path):
    spec = write(
        tmp_path / "tiny.yaml",
        "name: tiny\nchapters: [01_corruption]\nparameters: {seeds: [0]}\ngrid:\n  example_degree: [0.2, 0.4, 0.6]\n",
    )
    command = [sys.executable, "-m", "memnotebooks.sweep", str(spec), "--root", str(ROOT), "--runs-dir", str(tmp_path / "runs")]
    folder = tmp_path / "runs" / "tiny" / "01_corruption"
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not list(folder.glob("[!.]*.ipynb")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the whole sweep, kernels included
    process.wait()
    finished = {path.name: start_time(path) for path in folder.glob("[!.]*.ipynb")}
    assert 1 <= len(finished) < 3, "the sweep should be killed midway"

    dry = subprocess.run(command + ["--dry-run"], capture_output=True, text=True, check=True).stdout
    assert f"{len(finished)} of 3 done" in dry  # a half-written notebook is not taken as done

    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    after = {path.name: start_time(path) for path in folder.glob("[!.]*.ipynb")}
    assert sorted(after) == ["example_degree=0.2.ipynb", "example_degree=0.4.ipynb", "example_degree=0.6.ipynb"]
    assert all(after[name] == started for name, started in finished.items())  # nothing finished ran twice
    # The killed invocation recorded nothing; the resumed one its command and the code it started with.
    (invocation,) = json.loads((tmp_path / "runs" / "tiny" / "sweep.json").read_text())["invocations"]
    assert invocation["commit"] == git_commit() and invocation["command"].endswith(f"--runs-dir {tmp_path / 'runs'}")


@pytest.mark.notebooks
def test_a_failing_notebook_is_reported_and_runs_again(tmp_path):
    spec = write(tmp_path / "bad.yaml", "name: bad\nchapters: [01_corruption]\nparameters: {seeds: [0]}\ngrid:\n  example_degree: [0.2, 7.5]\n")
    command = [sys.executable, "-m", "memnotebooks.sweep", str(spec), "--root", str(ROOT), "--runs-dir", str(tmp_path / "runs"), "--jobs", "2"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1
    failed = tmp_path / "runs" / "bad" / "01_corruption" / "example_degree=7.5.ipynb"
    assert f"FAILED {failed}" in result.stderr and "degree" in result.stderr
    assert not failed.exists() and failed.with_suffix(".error.txt").is_file()
    assert "1 of 2 notebooks done, 1 failed" in result.stdout
    dry = subprocess.run(command + ["--dry-run"], capture_output=True, text=True, check=True).stdout
    assert f"to do  {failed}" in dry and "1 of 2 done" in dry
