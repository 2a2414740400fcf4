"""Runs: one configuration, one cached run, and grids of them; what the chapters and the sweeps call.

A :class:`RunConfig` names everything that determines a trained model (dataset, model, corruption
degree and mode, seed, subset sizes, optimizer settings, epoch cap). :func:`run` returns the run
from ``<artifacts>/<config key>/`` when it is there and trains it otherwise, so chapters share
runs: chapter 03 probes the models that chapter 02 trained.

A run folder holds ``config.json``, ``model.pt`` (the final weights), ``history.csv`` (per
epoch), ``labels.npz`` (the labels trained on and the corruption mask), ``examples.npz`` (each
training point's epoch of learning, each epoch's test predictions), ``summary.json`` and, when
asked for, ``checkpoints.pt``; :func:`write_run` and :func:`read_run` are its one writer and
reader, whichever trainer trained the run. Results derived from the run (evaluation tables, ...) are
stored beside them by :func:`memnotebooks.store.cached_table`, keyed by their own recipe. The
folder is written by :func:`memnotebooks.store.atomic_write`, so an interrupted run leaves
nothing a later one would trust, and :func:`is_complete` can tell a finished run from its key
alone, without loading any data.

A cached run is checked when it is read: its stored configuration and training labels must equal
what the current code derives for the configuration, or :class:`~memnotebooks.store.StaleArtifactError`
is raised. Old weights are never paired with new labels.

:func:`run_grid` gives the runs of a configuration at several degrees and seeds; with
``stacked=True`` the missing ones first train as stacked models (:mod:`memnotebooks.stacked`,
grouped by :func:`stacking_groups`), and ``python -m memnotebooks.runs`` does that from a shell.
How a run trains comes from one place, :meth:`RunConfig.training_settings`.

The device is deliberately not part of the key: a run trained on a GPU is read back on a CPU
(that is how full-size results reach the book), and ``summary.json`` records where it was
trained. GPU and CPU training differ by floating-point rounding only.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .checks import integer, one_of, real
from .corruption import MODES, check_degree, corrupt_labels, corrupted_points, randomize_inputs
from .data import DATASETS, Dataset, default_root, load_dataset, validation_split
from .devices import describe_device, resolve_device
from .models import MODELS, build_model, check_dropout, check_width
from .paper import paper_settings
from .stacked import dropout_reason, train_stacked, unstackable
from .store import StaleArtifactError, atomic_write, default_artifacts_dir, normalize, recipe_key
from .training import StopAtTarget, TrainingResult, check_weight_decay, train

__all__ = [
    "DATA_FIELDS",
    "MODEL_FIELDS",
    "TRAINING_FIELDS",
    "FIT_LABELS",
    "IDENTITY",
    "Run",
    "RunConfig",
    "build_run_model",
    "check_one_setting",
    "config_columns",
    "early_stopped",
    "history_table",
    "is_complete",
    "PER_RUN_FIELDS",
    "padded_history",
    "read_run",
    "run",
    "rows_of",
    "run_columns",
    "run_grid",
    "run_path",
    "stacking_groups",
    "summary_table",
    "test_parts",
    "train_missing_stacked",
    "training_data",
    "write_run",
]

FIT_LABELS = ("corrupted", "true")
"""Which training labels a probe or a class subspace is fitted on: the ones the network was
trained on, or the clean ones."""

TRAINING_FIELDS = ("optimizer", "learning_rate", "momentum", "weight_decay", "batch_size", "max_epochs", "target_accuracy", "checkpoint_epochs", "seed")
"""The :class:`RunConfig` fields that say how a run trains (:meth:`RunConfig.training_settings`)."""
DATA_FIELDS = ("dataset", "subset", "test_subset", "corruption_degree", "corruption_mode", "seed")
"""The fields that choose the images and labels a run trains on (:func:`training_data`)."""
MODEL_FIELDS = ("model", "dropout", "width", "seed")
"""The fields that build the run's model and its initial weights (:func:`build_run_model`)."""

_INTEGER_FIELDS = {"seed": None, "subset": 1, "test_subset": 1, "batch_size": 1, "max_epochs": 0}  # name: lowest value
_REAL_FIELDS = ("learning_rate", "momentum", "target_accuracy", "dropout", "weight_decay", "width")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a trained model; settings left ``None`` take the paper's.

    Values are normalized on construction (``learning_rate=1`` is ``1.0``, ``seed=np.int64(0)``
    is ``0``), so equal settings give equal keys.

    Parameters
    ----------
    dataset : str
        One of :data:`memnotebooks.data.DATASETS`.
    model : str
        One of :data:`memnotebooks.models.MODELS`.
    corruption_degree : float in [0, 1]
    corruption_mode : {"uniform", "permute", "random_inputs"}
    seed : int
        Seeds the corruption, the initial weights and the mini-batch order.
    subset, test_subset : int, optional
        Stratified subsets of the training and test sets (drawn with seed 0, so every seed and
        degree sees the same images).
    optimizer, learning_rate, momentum, batch_size, target_accuracy
        ``None`` takes :func:`memnotebooks.paper.paper_settings`.
    max_epochs : int
    checkpoint_epochs : tuple of int
        Epochs whose weights the run keeps (0 is the initial model).
    dropout : float in [0, 1)
        Dropout rate after every dense hidden layer (``mlp`` and ``cnn`` only); the paper uses 0.
    weight_decay : float >= 0
        L2 penalty coefficient of the optimizer; the paper uses 0.
    width : float > 0
        Multiplier of every hidden width (``mlp`` and ``cnn`` only), for width sweeps; the paper's
        is 1.
    """

    dataset: str = "digits"
    model: str = "mlp"
    corruption_degree: float = 0.0
    corruption_mode: str = "uniform"
    seed: int = 0
    subset: int | None = None
    test_subset: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    momentum: float | None = None
    batch_size: int | None = None
    target_accuracy: float | None = None
    max_epochs: int = 500
    checkpoint_epochs: tuple[int, ...] = ()
    dropout: float = 0.0
    weight_decay: float = 0.0
    width: float = 1.0

    def __post_init__(self):
        one_of("dataset", self.dataset, DATASETS)
        one_of("model", self.model, MODELS)
        one_of("corruption_mode", self.corruption_mode, MODES)
        set_ = functools.partial(object.__setattr__, self)
        set_("corruption_degree", check_degree(self.corruption_degree))
        for name, value in paper_settings(self.model, self.dataset).items():
            if getattr(self, name) is None:
                set_(name, value)
        for name, low in _INTEGER_FIELDS.items():
            if getattr(self, name) is not None:
                set_(name, integer(name, getattr(self, name), low=low))
        for name in _REAL_FIELDS:
            set_(name, real(name, getattr(self, name)))
        if isinstance(self.checkpoint_epochs, (str, bytes)) or not hasattr(self.checkpoint_epochs, "__iter__"):
            raise ValueError(f"checkpoint_epochs must be a list of epochs (integers >= 0), got {self.checkpoint_epochs!r}.")
        set_("checkpoint_epochs", tuple(sorted({integer("checkpoint_epochs", e, low=0) for e in self.checkpoint_epochs})))
        set_("dropout", check_dropout(self.dropout))
        set_("width", check_width(self.width))
        set_("weight_decay", check_weight_decay(self.weight_decay))
        for option, value, default in (("dropout", self.dropout, 0.0), ("width", self.width, 1.0)):
            takers = [name for name, entry in MODELS.items() if option in entry.options]
            if value != default and self.model not in takers:
                raise ValueError(f"{option} {value:g} is an option of models {', '.join(takers)} only, not of {self.model!r}.")

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return normalize(dataclasses.asdict(self))

    def key(self) -> str:
        """The run's folder name: a hash of the fields that differ from their defaults, and the
        cache version (:func:`memnotebooks.store.recipe_key`)."""
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        return recipe_key("run", dataclasses.asdict(self), defaults)

    def training_settings(self) -> dict:
        """The keyword arguments of :func:`memnotebooks.training.train` that this configuration
        sets: the one source of how a run trains, used by :func:`run`, the stacked grid and the
        fine-tuning of :mod:`memnotebooks.relabel`, so that a training field added here reaches
        every trainer. The other fields choose the data (:func:`training_data`) and the model
        (:func:`build_run_model`); :data:`TRAINING_FIELDS` and :data:`DATA_FIELDS` and
        :data:`MODEL_FIELDS` name them all (a test checks that every field is named once)."""
        settings = {name: getattr(self, name) for name in TRAINING_FIELDS if name != "target_accuracy"}
        return {**settings, "stop": StopAtTarget(self.target_accuracy)}

    def replace(self, **changes) -> RunConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


@dataclass
class Run:
    """A trained (or loaded) run.

    Attributes
    ----------
    config : RunConfig
    path : Path
        The run's artifact folder.
    dataset : Dataset
        The data the model saw: true labels in ``y_train``; for ``random_inputs`` the masked
        training inputs are the noise it was trained on.
    train_labels : Tensor of shape (n_train,), int64
        The (corrupted) labels the model was trained on.
    corruption_mask : ndarray of shape (n_train,), bool
        Points selected for corruption.
    model : nn.Module
        Final weights, in evaluation mode.
    history : DataFrame
        Per-epoch history (see :func:`memnotebooks.training.history_row`).
    summary : dict
        Epochs, whether the target was reached, final accuracies, wall time, device.
    """

    config: RunConfig
    path: Path
    dataset: Dataset
    train_labels: torch.Tensor
    corruption_mask: np.ndarray
    model: nn.Module
    history: pd.DataFrame
    summary: dict

    @property
    def corrupted(self) -> np.ndarray:
        """Boolean (n_train,): the corrupted training points
        (:func:`memnotebooks.corruption.corrupted_points`)."""
        true, given = self.dataset.y_train.numpy(), self.train_labels.numpy()
        return corrupted_points(true, given, self.corruption_mask, self.config.corruption_mode)

    def fit_labels(self, which: str, corruption_degree: float | None = None) -> np.ndarray:
        """The training labels a probe is fitted on: ``"corrupted"`` or ``"true"``.

        ``"corrupted"`` are the labels the network was trained on or, with ``corruption_degree``,
        the labels corrupted to that degree with the run's seed and mode (the labels the run of
        that degree was trained on).
        """
        if which not in FIT_LABELS:
            raise ValueError(f"Unknown fit_labels {which!r}; choose from: {', '.join(FIT_LABELS)}.")
        if which == "true":
            return self.dataset.y_train.numpy()
        if corruption_degree is None:
            return self.train_labels.numpy()
        c = self.config
        return corrupt_labels(self.dataset.y_train, corruption_degree, self.dataset.n_classes, seed=c.seed, mode=c.corruption_mode).labels

    @property
    def learned_epoch(self) -> np.ndarray:
        """Int (n_train,): per training point, the epoch from which the network fitted its label
        for good, or -1 if it did not fit it at the end (see
        :class:`memnotebooks.training.TrainingResult`)."""
        path = self.path / "examples.npz"
        if not path.is_file():
            raise FileNotFoundError(f"The run {self.path} was stored before per-example records were kept; delete its folder to retrain it.")
        with np.load(path) as stored:
            return stored["learned_epoch"]

    @property
    def test_predictions(self) -> np.ndarray:
        """Int (n_epochs + 1, n_test): the class the network predicted for every test image after
        every epoch (row 0: the initial model), for image-by-image comparisons
        (:mod:`memnotebooks.uncertainty`)."""
        with np.load(self.path / "examples.npz") as stored:
            return stored["test_predictions"].astype(np.int64)

    def checkpoint(self, epoch: int) -> nn.Module:
        """A copy of the model with the weights it had at ``epoch`` (one of ``checkpoint_epochs``)."""
        if epoch not in self.config.checkpoint_epochs:
            raise ValueError(f"No checkpoint at epoch {epoch}; this run kept {list(self.config.checkpoint_epochs)}.")
        # Memory-mapped: only the asked-for epoch's tensors are read (the file holds every epoch).
        states = torch.load(self.path / "checkpoints.pt", weights_only=True, mmap=True)
        if epoch not in states:
            raise ValueError(f"Epoch {epoch} was never reached: training stopped at epoch {self.summary['epochs']}.")
        model = build_run_model(self.config, self.dataset)
        model.load_state_dict(states[epoch])
        return model.to(next(self.model.parameters()).device).eval()


@functools.lru_cache(maxsize=1)
def _clean_dataset(name: str, data_root: str, subset, test_subset) -> Dataset:
    # One dataset at a time: a chapter uses one, and a full one can take gigabytes.
    return load_dataset(name, data_root, subset=subset, test_subset=test_subset, seed=0)


def training_data(config: RunConfig, data_root=None) -> tuple[Dataset, torch.Tensor, np.ndarray]:
    """The dataset as the run sees it, the labels it trains on and the corruption mask.

    Parameters
    ----------
    config : RunConfig
    data_root : path, optional
        Dataset folder; default :func:`memnotebooks.data.default_root`.

    Returns
    -------
    dataset : Dataset
        With the masked training inputs replaced by noise in ``random_inputs`` mode.
    train_labels : Tensor of shape (n_train,), int64
    corruption_mask : ndarray of shape (n_train,), bool
    """
    root = str(Path(data_root) if data_root is not None else default_root())
    clean = _clean_dataset(config.dataset, root, config.subset, config.test_subset)
    labels, mask = corrupt_labels(
        clean.y_train, config.corruption_degree, clean.n_classes, seed=config.seed, mode=config.corruption_mode
    )
    dataset = clean
    if config.corruption_mode == "random_inputs":
        dataset = dataclasses.replace(clean, x_train=randomize_inputs(clean.x_train, mask, seed=config.seed))
    return dataset, torch.from_numpy(labels), mask


def build_run_model(config: RunConfig, dataset: Dataset) -> nn.Module:
    """The run's model with its initial weights (seeded by ``config.seed``; the global random
    state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        options = {name: getattr(config, name) for name in MODEL_FIELDS if name not in ("model", "seed") and getattr(config, name) != getattr(RunConfig, name)}
        return build_model(config.model, dataset.input_shape, dataset.n_classes, **options)


def test_parts(dataset: Dataset) -> dict:
    """The parts of the test set a run also scores after every epoch: its validation and holdout
    parts (:func:`memnotebooks.data.validation_split`), so that an epoch can be chosen on one and
    scored on the other (the early-stopped network)."""
    validation = torch.from_numpy(validation_split(dataset.y_test.numpy()))
    return {"test_validation": ("test", validation), "test_holdout": ("test", ~validation)}


def run_path(config: RunConfig, artifacts_dir=None) -> Path:
    """The run's folder in the cache (default :func:`memnotebooks.store.default_artifacts_dir`)."""
    return Path(artifacts_dir if artifacts_dir is not None else default_artifacts_dir()) / config.key()


def is_complete(config: RunConfig, artifacts_dir=None) -> bool:
    """Whether the cache holds the finished run for ``config`` (no data is loaded)."""
    return (run_path(config, artifacts_dir) / "summary.json").is_file()


def _summary(result: TrainingResult, device: torch.device) -> dict:
    last = result.history.iloc[-1]
    return {
        "epochs": result.epochs,
        "reached_target": result.stopped,
        "train_accuracy": float(last["train_accuracy"]),
        "full_pass_train_accuracy": result.full_pass_train_accuracy,
        "test_accuracy": float(last["test_accuracy"]),
        "seconds": float(last["seconds"]),
        "device": describe_device(device),
        "torch": torch.__version__,
    }


def write_run(config: RunConfig, model: nn.Module, result: TrainingResult, *, device, artifacts_dir=None, data_root=None, **summary) -> Path:
    """Write a trained run into the cache, atomically (nothing is left half-written).

    Parameters
    ----------
    config : RunConfig
    model : nn.Module
        The trained model (its final weights are stored).
    result : TrainingResult
        What the trainer returned for it (history, checkpoints, per-example records).
    device : str or torch.device
        Where it was trained (recorded in ``summary.json``).
    artifacts_dir, data_root : path, optional
        As for :func:`run`.
    **summary
        More entries of ``summary.json`` (the stacked grid adds ``stacked_with`` and ``stack``).

    Returns
    -------
    Path
        The run's folder, which :func:`read_run` reads.
    """
    _, labels, mask = training_data(config, data_root)
    path = run_path(config, artifacts_dir)

    def write(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
        result.history.to_csv(tmp / "history.csv", index=False)
        np.savez(tmp / "labels.npz", train_labels=labels.numpy(), corruption_mask=mask)
        np.savez(tmp / "examples.npz", learned_epoch=result.learned_epoch.numpy(), test_predictions=result.test_predictions.numpy())
        if result.checkpoints:
            torch.save(result.checkpoints, tmp / "checkpoints.pt")
        (tmp / "summary.json").write_text(json.dumps({**_summary(result, resolve_device(device)), **summary}, indent=2))

    atomic_write(path, write)
    return path


def read_run(config: RunConfig, *, artifacts_dir=None, data_root=None, device: str | torch.device = "auto") -> Run:
    """Read a finished run from the cache, checked against what the current code derives.

    Parameters
    ----------
    config : RunConfig
    artifacts_dir, data_root : path, optional
        As for :func:`run`.
    device : str or torch.device
        Where the returned model lives.

    Raises
    ------
    FileNotFoundError
        If the cache holds no finished run for ``config`` (:func:`is_complete`).
    memnotebooks.store.StaleArtifactError
        If the stored configuration or labels differ from what the current code derives.
    """
    path = run_path(config, artifacts_dir)
    if not is_complete(config, artifacts_dir):
        raise FileNotFoundError(f"No finished run for {config} in {path.parent}; runs.run(config) trains it.")
    dataset, labels, mask = training_data(config, data_root)
    _check_stored(path, config, labels, mask)
    model = build_run_model(config, dataset)
    model.load_state_dict(torch.load(path / "model.pt", weights_only=True))
    return Run(
        config=config,
        path=path,
        dataset=dataset,
        train_labels=labels,
        corruption_mask=mask,
        model=model.to(resolve_device(device)).eval(),
        history=pd.read_csv(path / "history.csv"),
        summary=json.loads((path / "summary.json").read_text()),
    )


def _check_stored(path: Path, config: RunConfig, labels: torch.Tensor, mask: np.ndarray) -> None:
    """Refuse a cached run whose configuration or labels differ from what the code derives now."""
    advice = f"Delete {path}, or bump memnotebooks.store.CACHE_VERSION if the code change is intended."
    expected = config.to_dict()
    defaults = RunConfig(dataset=config.dataset, model=config.model).to_dict()
    # A field added after the run was stored is absent from its config.json; at its default the
    # key is the same (keys hash non-default fields), and so is the run.
    stored_config = {**{k: v for k, v in expected.items() if v == defaults[k]}, **json.loads((path / "config.json").read_text())}
    if stored_config != expected:
        raise StaleArtifactError(f"The cached run {path} was made by another configuration than {config}. {advice}")
    with np.load(path / "labels.npz") as stored:
        stored_labels, stored_mask = stored["train_labels"], stored["corruption_mask"]
    if stored_labels.shape != labels.shape or stored_mask.shape != mask.shape:
        raise StaleArtifactError(
            f"The cached run {path} ({config}) was trained on {len(stored_labels)} labels; the current code "
            f"derives {len(labels)} for its configuration. {advice}"
        )
    differ = int((stored_labels != labels.numpy()).sum() + (stored_mask != mask).sum())
    if differ:
        raise StaleArtifactError(
            f"The cached run {path} ({config}) was trained on labels that differ from those the current code "
            f"derives for its configuration ({differ} labels or mask entries differ). {advice}"
        )


def _corrupted(config: RunConfig, dataset: Dataset, labels: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(corrupted_points(dataset.y_train.numpy(), labels.numpy(), mask, config.corruption_mode))


def run(
    config: RunConfig,
    *,
    artifacts_dir: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> Run:
    """Return the run for ``config``, from the artifact cache or by training it.

    Parameters
    ----------
    config : RunConfig
    artifacts_dir : path, optional
        The cache; default :func:`memnotebooks.store.default_artifacts_dir`.
    data_root : path, optional
        Dataset folder for :func:`memnotebooks.data.load_dataset`.
    device : str or torch.device
        Where to train and where the returned model lives.
    progress : bool
        Show training progress.

    Returns
    -------
    Run

    Raises
    ------
    memnotebooks.store.StaleArtifactError
        If the cached run's configuration or labels differ from what the current code derives.
    """
    device = resolve_device(device)
    if not is_complete(config, artifacts_dir):
        dataset, labels, mask = training_data(config, data_root)
        model = build_run_model(config, dataset)
        result = train(
            model,
            dataset.x_train,
            labels,
            y_true=dataset.y_train,
            corrupted=_corrupted(config, dataset, labels, mask),
            evaluation_sets={"test": (dataset.x_test, dataset.y_test)},
            evaluation_parts=test_parts(dataset),
            **config.training_settings(),
            device=device,
            progress=progress,
        )
        write_run(config, model, result, device=device, artifacts_dir=artifacts_dir, data_root=data_root)
    return read_run(config, artifacts_dir=artifacts_dir, data_root=data_root, device=device)


PER_RUN_FIELDS = ("seed", "corruption_degree", "corruption_mode", "target_accuracy", "max_epochs", "checkpoint_epochs")
"""The :class:`RunConfig` fields in which runs of one stack may differ (their weights, labels,
inputs and when they stop); every other field (dataset, subsets, model, optimizer settings,
batch size, dropout, weight decay, width) must be equal."""


def stacking_groups(configs) -> tuple[list[list[RunConfig]], dict[RunConfig, str]]:
    """Split runs into groups that can each train as one stacked model.

    Parameters
    ----------
    configs : sequence of RunConfig
        Distinct configurations.

    Returns
    -------
    groups : list of list of RunConfig
        Runs equal in every field but :data:`PER_RUN_FIELDS`, in the order given.
    one_by_one : dict of RunConfig to str
        The runs that cannot be stacked (dropout), each with the reason.
    """
    configs = _distinct(configs)
    groups, one_by_one = {}, {}
    for config in configs:
        if config.dropout:
            one_by_one[config] = dropout_reason([config.dropout])
        else:
            shared = config.replace(**{name: RunConfig.__dataclass_fields__[name].default for name in PER_RUN_FIELDS})
            groups.setdefault(shared, []).append(config)
    return list(groups.values()), one_by_one


def _distinct(configs) -> list[RunConfig]:
    configs = list(configs)
    wrong = [c for c in configs if not isinstance(c, RunConfig)]
    if wrong:
        raise TypeError(f"configs must be RunConfig instances, got {wrong[0]!r} ({type(wrong[0]).__name__}).")
    repeated = {c for c in configs if configs.count(c) > 1}
    if repeated:
        raise ValueError(f"Each run must be given once; repeated: {sorted(map(str, repeated))}.")
    return configs


def _train_stacked_group(group: list[RunConfig], artifacts_dir, data_root, device: torch.device, progress: bool) -> str | None:
    """Train one stacking group into the cache; the reason if its model cannot be stacked."""
    data = [training_data(c, data_root) for c in group]
    models = [build_run_model(c, dataset) for c, (dataset, _, _) in zip(group, data)]
    reason = unstackable(models[0])
    if reason:
        return reason
    dataset = data[0][0]
    settings = [c.training_settings() for c in group]
    # Every training setting but the per-run ones is the stack's, so a new one reaches it too.
    per_run = ("seed", "stop", "max_epochs", "checkpoint_epochs")
    shared = {name: value for name, value in settings[0].items() if name not in per_run}
    results = train_stacked(
        models,
        [d.x_train for d, _, _ in data],
        torch.stack([labels for _, labels, _ in data]),
        y_true=dataset.y_train,
        corrupted=torch.stack([_corrupted(c, d, labels, mask) for c, (d, labels, mask) in zip(group, data)]),
        seeds=[s["seed"] for s in settings],
        stops=[s["stop"] for s in settings],
        max_epochs=[s["max_epochs"] for s in settings],
        checkpoint_epochs=[s["checkpoint_epochs"] for s in settings],
        evaluation_sets={"test": (dataset.x_test, dataset.y_test)},
        evaluation_parts=test_parts(dataset),
        **shared,
        device=device,
        progress=progress,
    )
    # Names the stack, so that a report counts its shared wall time once.
    stack = hashlib.sha1(" ".join(sorted(c.key() for c in group)).encode()).hexdigest()[:12]
    for config, model, result in zip(group, models, results):
        write_run(config, model, result, device=device, artifacts_dir=artifacts_dir, data_root=data_root, stacked_with=len(group), stack=stack)
    return None


def train_missing_stacked(configs, *, artifacts_dir=None, data_root=None, device: str | torch.device = "auto", progress: bool = True) -> dict[RunConfig, str]:
    """Train the runs missing from the cache, stacked where they can be
    (:func:`memnotebooks.stacked.train_stacked`), and write them to it.

    Runs already in the cache are left alone. The others are grouped by :func:`stacking_groups`;
    each group trains as one stacked model. The runs that cannot be stacked (dropout, a model with
    buffers) are named in a ``UserWarning`` with the reason and left to :func:`run`.

    Returns
    -------
    dict of RunConfig to str
        The runs not trained here (still to be trained one by one), each with the reason.
    """
    configs = _distinct(configs)
    if not configs:
        raise ValueError("No runs to train: configs is empty.")
    device = resolve_device(device)
    groups, one_by_one = stacking_groups([c for c in configs if not is_complete(c, artifacts_dir)])
    for group in groups:
        reason = _train_stacked_group(group, artifacts_dir, data_root, device, progress)
        if reason:
            one_by_one.update(dict.fromkeys(group, reason))
    if one_by_one:
        warnings.warn(f"{len(one_by_one)} run(s) cannot be stacked and train one by one. {_by_reason(one_by_one)}", stacklevel=2)
    return one_by_one


def _by_reason(one_by_one: dict[RunConfig, str]) -> str:
    """The runs named briefly (their key, dataset, model, degree, mode and seed), grouped by reason."""
    runs_by_reason = {}
    for c, why in one_by_one.items():
        name = f"{c.key()} ({c.model} on {c.dataset}, {c.corruption_mode} degree {c.corruption_degree}, seed {c.seed})"
        runs_by_reason.setdefault(why, []).append(name)
    return " ".join(f"Because {why}: {', '.join(names)}." for why, names in runs_by_reason.items())


def run_grid(config: RunConfig, degrees=(0.0,), seeds=(0,), *, stacked: bool = False, **run_kwargs) -> list[Run]:
    """Runs of ``config`` at every corruption degree and seed (from the cache where possible).

    With ``stacked=True`` the runs missing from the cache are first trained together as stacked
    models (:func:`train_missing_stacked`), which warns about the runs it cannot stack (dropout,
    BatchNorm); those are then trained one by one. ``run_kwargs`` go to :func:`run`.
    """
    configs = [config.replace(corruption_degree=d, seed=s) for d in degrees for s in seeds]
    if stacked:
        train_missing_stacked(list(dict.fromkeys(configs)), **run_kwargs)
    return [run(c, **run_kwargs) for c in configs]


IDENTITY = ("dataset", "model", "corruption_degree", "seed")
"""The columns every run's rows carry (:func:`config_columns`)."""


def config_columns(run_: Run) -> dict:
    """The columns that identify a run in a tidy table: :data:`IDENTITY`, and every other
    :class:`RunConfig` field that is not at its default for the run's dataset and model (the rule
    of :meth:`RunConfig.key`), so that runs differing in dropout, width, weight decay, corruption
    mode, epoch cap, ... never share a group (:func:`run_columns`).

    ``checkpoint_epochs`` is left out: it says which weights a run kept, not how it trained.
    """
    c = run_.config
    defaults = RunConfig(dataset=c.dataset, model=c.model)
    changed = {
        name: getattr(c, name)
        for name in RunConfig.__dataclass_fields__
        if name not in (*IDENTITY, "checkpoint_epochs") and getattr(c, name) != getattr(defaults, name)
    }
    return {**{name: getattr(c, name) for name in IDENTITY}, **changed}


def check_one_setting(runs_, by=("dataset", "model")) -> None:
    """Refuse runs that differ in more than their degree and seed within a group of ``by``.

    Tables that set degrees and seeds side by side (a report beside the paper, chapter 05's
    baselines) average the seeds of each degree; runs that differ in another field (dropout,
    width, epoch cap, ...) would be averaged as if they were seeds.

    Raises
    ------
    ValueError
        Naming the fields in which two runs of one group differ and their values.
    """
    settings = {}
    for r in runs_:
        group = tuple(getattr(r.config, name) for name in by)
        setting = tuple((k, v) for k, v in config_columns(r).items() if k not in IDENTITY)
        settings.setdefault(group, {}).setdefault(setting, r.config)
    for group, configs in settings.items():
        if len(configs) > 1:
            first, second = list(configs.values())[:2]
            fields = [name for name in RunConfig.__dataclass_fields__ if name not in ("corruption_degree", "seed", "checkpoint_epochs") and getattr(first, name) != getattr(second, name)]
            where = f" of {', '.join(map(str, group))}" if by else ""
            values = "; ".join(f"{name} {getattr(first, name)!r} and {getattr(second, name)!r}" for name in fields)
            raise ValueError(f"The runs{where} differ in more than their degree and seed ({values}): their seeds would be averaged together. Give each setting its own table.")


def run_columns(table: pd.DataFrame, without=("seed",)) -> list[str]:
    """The columns of ``table`` that identify a run (the :class:`RunConfig` fields it has, in
    field order), less ``without``: the keys to group by to average the seeds of one setting.

    Rows of runs at a field's default hold NaN in that field's column when other runs of the
    table set it, so group with ``dropna=False``.
    """
    return [name for name in RunConfig.__dataclass_fields__ if name in table.columns and name not in (*without, "checkpoint_epochs")]


def rows_of(table: pd.DataFrame, run_: Run) -> pd.DataFrame:
    """The rows of a table of several runs (their configuration columns,
    :func:`config_columns`) that are ``run_``'s: every identifying field, the seed included."""
    values, mask = config_columns(run_), np.ones(len(table), dtype=bool)
    for column in run_columns(table, without=()):
        mask &= (table[column].isna() if values.get(column) is None else table[column] == values[column]).to_numpy()
    return table[mask]


def summary_table(runs, at: str = "final") -> pd.DataFrame:
    """One row per run: configuration, epochs trained, accuracies (the history row's, and the
    final model's full-pass training accuracy).

    ``at="final"`` takes the last history row; ``at="early-stopped"`` the row early stopping keeps
    (:func:`early_stopped`: chosen on the *true* labels of the test set's validation part), with
    its epoch in ``epochs`` (``full_pass_train_accuracy`` stays the final model's)."""
    if at not in ("final", "early-stopped"):
        raise ValueError(f"Unknown at={at!r}; choose 'final' or 'early-stopped'.")
    rows = []
    for r in runs:
        row = r.history.iloc[-1] if at == "final" else early_stopped(r.history.reset_index(drop=True))
        rows.append(
            {
                **config_columns(r),
                "epochs": r.summary["epochs"] if at == "final" else int(row["epoch"]),
                "reached_target": r.summary["reached_target"],
                **row.drop(["epoch", "loss", "seconds"]).to_dict(),
                "full_pass_train_accuracy": r.summary["full_pass_train_accuracy"],
            }
        )
    return pd.DataFrame(rows)


def padded_history(history: pd.DataFrame, by=("corruption_degree",)) -> pd.DataFrame:
    """:func:`history_table` with every run carried on to the last epoch of the longest run of its
    group (``by``), holding its final row, so that a mean curve averages every seed at every epoch
    (a run stops when it reaches its target; without padding, the mean after the first run stops
    would average fewer seeds). Column ``padded`` marks the carried rows.

    Runs are told apart by every column that identifies one (:func:`run_columns`).
    """
    by = list(by)
    missing = [k for k in [*by, "seed"] if k not in history]
    if missing:
        raise ValueError(f"padded_history needs the column(s) {missing}; the table has: {', '.join(history.columns)}.")
    one_run = run_columns(history, without=())  # seed and every other field that tells runs apart
    frames = []
    for _, group in history.groupby(by, sort=False, dropna=False) if by else [(None, history)]:
        last_epoch = int(group.epoch.max())
        for _, one in group.groupby(one_run, sort=False, dropna=False):
            one = one.sort_values("epoch").assign(padded=False)
            final = one.iloc[-1]
            extra = pd.DataFrame([final] * (last_epoch - int(final.epoch))).reset_index(drop=True)
            if len(extra):
                extra["epoch"] = np.arange(int(final.epoch) + 1, last_epoch + 1)
                extra["padded"] = True
            frames.append(pd.concat([one, extra.astype(one.dtypes.to_dict())], ignore_index=True) if len(extra) else one)
    return pd.concat(frames, ignore_index=True)


def early_stopped(history: pd.DataFrame) -> pd.Series:
    """The row of a run's history (:attr:`Run.history`) at the epoch early stopping keeps: the
    highest accuracy on the validation part of the test set (the first such epoch on ties)."""
    return history.loc[history.test_validation_accuracy.idxmax()]


def history_table(runs, fields=()) -> pd.DataFrame:
    """All runs' per-epoch histories, stacked, with the configuration columns and the
    :class:`RunConfig` ``fields`` named (e.g. ``["corruption_mode", "dropout"]``) as more columns."""
    unknown = [f for f in fields if f not in RunConfig.__dataclass_fields__]
    if unknown:
        raise ValueError(f"Unknown RunConfig field(s) {unknown}; the fields are: {', '.join(RunConfig.__dataclass_fields__)}.")
    return pd.concat([r.history.assign(**config_columns(r), **{f: getattr(r.config, f) for f in fields}) for r in runs], ignore_index=True)


def main(argv=None) -> None:
    """Train a grid into a run cache from the command line, stacked where it can be: the entry
    point for machines without Jupyter (``python -m memnotebooks.report`` then compares the cache
    with the paper)."""
    parser = argparse.ArgumentParser(prog="python -m memnotebooks.runs", description="Train a grid of runs (degrees x seeds) as stacked models into a run cache.")
    parser.add_argument("artifacts_dir", help="the run cache to train into (runs already there are read, not trained)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--degrees", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8], help="corruption degrees p")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--subset", type=int, default=None, help="stratified training subset (default: all)")
    parser.add_argument("--test-subset", type=int, default=None, help="stratified test subset (default: all)")
    parser.add_argument("--max-epochs", type=int, default=500)
    parser.add_argument("--checkpoint-epochs", type=int, nargs="*", default=[], help="epochs whose weights each run keeps (rewinding, editing)")
    parser.add_argument("--data-root", default=None, help="dataset folder (default $MEMNOTEBOOKS_DATA)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        config = RunConfig(dataset=args.dataset, model=args.model, subset=args.subset, test_subset=args.test_subset, max_epochs=args.max_epochs,
                           checkpoint_epochs=tuple(args.checkpoint_epochs))
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    start = time.perf_counter()
    grid = run_grid(config, args.degrees, args.seeds, stacked=True, artifacts_dir=args.artifacts_dir, data_root=args.data_root, device=args.device, progress=not args.no_progress)
    columns = ["corruption_degree", "seed", "epochs", "reached_target", "test_accuracy"]
    print(summary_table(grid)[columns].to_string(index=False))
    print(f"{len(grid)} runs in {args.artifacts_dir}, {time.perf_counter() - start:.0f} s wall time")


if __name__ == "__main__":
    main()
