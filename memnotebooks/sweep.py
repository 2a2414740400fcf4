"""Batch runs: chapters × parameter values, executed by papermill, resumable and shardable.

A sweep file (YAML) names the chapters, the parameters every notebook gets and a grid of
values; each combination of grid values is one notebook per chapter::

    name: fashion_mnist_subset
    chapters: [02_training, 05_masc_decoding]
    parameters:          # every notebook gets these
      dataset: fashion_mnist
      model: cnn
      subset: 10000
    grid:                # one notebook per combination
      degrees: [[0.2], [0.4], [0.6], [0.8]]
      seeds: [[0]]

``grid`` may also be a list of such mappings: the notebooks of each, in turn (e.g. one per
model and dataset pair of the paper's table, ``sweeps/paper_table.yaml``).

``python -m memnotebooks.sweep SWEEP.yaml`` executes each into
``runs/<name>/<chapter>/<grid values>.ipynb``. Every notebook of a sweep shares one run cache,
``runs/<name>/artifacts`` (unless the file sets ``artifacts_dir``), so the chapters of one grid
point train each run once and :mod:`memnotebooks.report` gathers what they computed.

- **Resume.** A notebook is written under a temporary name and renamed when it has run to the
  end (:func:`memnotebooks.store.atomic_write`), so an existing notebook is a finished one and is
  skipped; a failed one leaves only ``<name>.error.txt`` beside it and runs again next time.
- **Parallel and sharded.** ``--jobs N`` runs N kernels at once, each with its share of the
  cores (``OMP_NUM_THREADS``, unless set); ``--shard i/n`` runs the
  notebooks whose position in the sweep's fixed order is ``i`` modulo ``n`` (0-based), so the
  tasks of a cluster job array split a sweep exactly once (``examples/slurm_sweep.sh``).
- ``--dry-run`` lists what would run and what is done.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .book import chapter_parameters, chapters, execute_chapter
from .store import atomic_write, git_commit, normalize, recipe_key

__all__ = ["Job", "expand", "load_sweep", "main", "parse_shard", "run_jobs", "shard"]

_KEYS = {"name", "chapters", "parameters", "grid"}


@dataclass(frozen=True)
class Job:
    """One notebook of a sweep: a chapter, its parameters and where its executed copy goes."""

    chapter: Path
    parameters: dict
    output: Path

    @property
    def done(self) -> bool:
        return self.output.is_file()

    @property
    def error_file(self) -> Path:
        return self.output.with_suffix(".error.txt")


def load_sweep(path: str | os.PathLike) -> dict:
    """A sweep file read and checked for its keys (``name``, ``chapters``, ``parameters``, ``grid``)."""
    import yaml

    if not Path(path).is_file():
        near = sorted(p.name for p in Path(path).parent.glob("*.yaml")) if Path(path).parent.is_dir() else []
        raise ValueError(f"No sweep file {str(path)!r}" + (f"; {Path(path).parent} holds: {', '.join(near)}." if near else "."))
    try:
        sweep = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(sweep, dict):
        raise ValueError(f"{path}: a sweep file is a mapping with the keys {sorted(_KEYS)}.")
    unknown = sorted(set(sweep) - _KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; a sweep file has: {', '.join(sorted(_KEYS))}.")
    sweep.setdefault("name", Path(path).stem)
    sweep["parameters"] = sweep.get("parameters") or {}
    if not isinstance(sweep["parameters"], dict):
        raise ValueError(f"{path}: 'parameters' must map parameter names to values, got {sweep['parameters']!r}.")
    grids = sweep.get("grid") or {}
    sweep["grid"] = grids if isinstance(grids, list) else [grids]
    for grid in sweep["grid"]:
        if not isinstance(grid, dict):
            raise ValueError(f"{path}: a grid maps parameter names to lists of values, got {grid!r}.")
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"{path}: grid values of {name!r} must be a non-empty list, got {values!r}.")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(sweep["name"])):
        raise ValueError(f"{path}: the sweep name {sweep['name']!r} must be letters, digits, '_', '.' or '-'.")
    return sweep


def _label(values: dict) -> str:
    """A file name for a grid point: ``degrees=0.2,seeds=0`` (brackets and quotes dropped)."""
    text = ",".join(f"{name}={json.dumps(normalize(value), separators=(',', ':'))}" for name, value in values.items())
    return re.sub(r"[^A-Za-z0-9_.,=-]", "", text) or "defaults"


def expand(sweep: dict, root: str | os.PathLike = ".", runs_dir: str | os.PathLike = "runs") -> list[Job]:
    """The sweep's notebooks in a fixed order (grid points, then chapters in reading order).

    Raises
    ------
    ValueError
        A chapter that is not in the book, or a parameter a chapter does not declare (the error
        lists what it declares, from papermill's ``inspect_notebook``).
    """
    available = {path.stem: path for path in chapters(root)}
    names = sweep.get("chapters") or list(available)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"Unknown chapter(s) {unknown}; the book has: {', '.join(available)}.")
    folder = Path(runs_dir) / str(sweep["name"])
    fixed = sweep["parameters"]
    varied = {name for grid in sweep["grid"] for name in grid}
    cache = {}
    for name in names:
        declared = chapter_parameters(available[name])
        undeclared = sorted((set(fixed) | varied) - declared)
        if undeclared:
            raise ValueError(f"Chapter {name} has no parameter(s) {undeclared}; it declares: {', '.join(sorted(declared))}.")
        # One run cache for the whole sweep, for the chapters that keep runs.
        cache[name] = {"artifacts_dir": str((folder / "artifacts").resolve())} if "artifacts_dir" in declared else {}
    grid = [dict(zip(g, values)) for g in sweep["grid"] for values in itertools.product(*g.values())]
    labels = [_label(point) for point in grid]
    if len(set(labels)) < len(labels) or any(len(label) > 120 for label in labels):
        labels = [recipe_key("grid point", point) for point in grid]  # names that cannot collide
    return [Job(available[name], {**cache[name], **fixed, **point}, folder / name / f"{label}.ipynb") for point, label in zip(grid, labels) for name in names]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0 <= i < n) as ``(i, n)``."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"--shard takes i/n with 0 <= i < n (e.g. 0/4), got {text!r}.")
    return int(match[1]), int(match[2])


def shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """The jobs of shard ``index`` of ``count``: every ``count``-th from position ``index``."""
    return jobs[index::count]


def _execute(job: Job, kernel_name: str | None, threads: int | None = None) -> str | None:
    """Run one job; ``None`` on success, else the error (also written beside the notebook).

    ``threads`` caps the kernel's BLAS/OpenMP threads (the kernel inherits the environment): N
    kernels that each use every core slow one another down many times over."""
    if threads is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    job.error_file.unlink(missing_ok=True)
    try:
        execute_chapter(job.chapter, job.output, job.parameters, kernel_name)
        return None
    except Exception as error:  # any failure is reported, the sweep goes on
        message = "".join(traceback.format_exception_only(error)).strip()
        job.error_file.parent.mkdir(parents=True, exist_ok=True)
        job.error_file.write_text(message + "\n")
        return message


def run_jobs(jobs: list[Job], n_jobs: int = 1, kernel_name: str | None = None, progress: bool = True) -> dict:
    """Execute the jobs that are not done, ``n_jobs`` at a time.

    Returns
    -------
    list of (Job, str)
        The failed jobs and their errors.
    """
    pending = [job for job in jobs if not job.done]
    failures = []
    bar = tqdm(total=len(pending), desc="notebooks", unit="nb", disable=not progress)
    if n_jobs == 1:
        for job in pending:
            if (error := _execute(job, kernel_name)) is not None:
                failures.append((job, error))
            bar.update()
    else:
        threads = max(1, (os.cpu_count() or 1) // n_jobs)  # the cores shared out, unless OMP_NUM_THREADS is set
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            futures = {pool.submit(_execute, job, kernel_name, threads): job for job in pending}
            for future in as_completed(futures):
                if (error := future.result()) is not None:
                    failures.append((futures[future], error))
                bar.update()
    bar.close()
    return failures


def _grid_values(values: list[str]) -> list:
    import yaml

    return [yaml.safe_load(value) for value in values]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="memnotebooks-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="sweep file (YAML)")
    parser.add_argument("--root", default=".", help="repository root (holds book/)")
    parser.add_argument("--runs-dir", default="runs", help="where runs/<sweep>/ goes")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebooks' own)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at once")
    parser.add_argument("--shard", default="0/1", help="run shard i of n (0-based), e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")
    parser.add_argument("--dry-run", action="store_true", help="list the notebooks and whether they are done; run nothing")
    parser.add_argument(
        "-p", "--grid", nargs="+", action="append", default=[], metavar=("NAME", "VALUE"),
        help="grid values of a parameter, each read as YAML (e.g. -p degrees '[0.2]' '[0.4]'); replaces the file's",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    try:
        index, count = parse_shard(args.shard)
        sweep = load_sweep(args.sweep)
        for name, *values in args.grid:
            if not values:
                raise ValueError(f"-p {name} needs at least one value.")
            for grid in sweep["grid"]:
                grid[name] = _grid_values(values)
        jobs = shard(expand(sweep, args.root, args.runs_dir), index, count)
    except ValueError as error:
        parser.error(str(error))
    if args.dry_run:
        for job in jobs:
            print(f"{'done ' if job.done else 'to do'}  {job.output}")
        print(f"{sum(job.done for job in jobs)} of {len(jobs)} done")
        return 0
    started, commit = time.time(), git_commit()  # the code the kernels import as they start
    failures = run_jobs(jobs, args.jobs, args.kernel)
    _record(Path(args.runs_dir) / str(sweep["name"]), sweep, argv, started, commit, index, count)
    print(f"{len(jobs) - len(failures)} of {len(jobs)} notebooks done, {len(failures)} failed")
    for job, error in failures:
        print(f"FAILED {job.output}\n  {error.splitlines()[-1] if error else ''}\n  (full error: {job.error_file})", file=sys.stderr)
    return 1 if failures else 0


def _record(folder: Path, sweep: dict, argv, started: float, commit: str | None, index: int, count: int) -> None:
    """Append this invocation to ``<folder>/sweep.json``: the sweep, the command line, the code's
    git commit when it started and the wall time, read by :mod:`memnotebooks.report` for its
    provenance. (Each kernel imports the package as its notebook starts: a checkout changed during
    a sweep runs its later notebooks with other code.)"""
    record_file = folder / "sweep.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else {"sweep": normalize(sweep), "invocations": []}
    record["invocations"].append(
        {
            "command": "memnotebooks-sweep " + " ".join(sys.argv[1:] if argv is None else argv),
            "commit": commit,
            "shard": f"{index}/{count}",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "wall_seconds": round(time.time() - started, 1),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(record_file, lambda tmp: tmp.write_text(json.dumps(record, indent=2)))


if __name__ == "__main__":
    sys.exit(main())
