"""One configuration, one cached run: what the chapters and the sweeps call.

A :class:`RunConfig` names everything that determines a trained model (dataset, model, corruption
degree and mode, seed, subset sizes, optimizer settings, epoch cap). :func:`run` returns the run
from ``<artifacts>/<config key>/`` when it is there and trains it otherwise. Chapters therefore
share runs: chapter 03 probes the models that chapter 02 trained.

A run folder holds ``config.json``, ``model.pt`` (the final weights), ``history.csv`` (per
epoch), ``labels.npz`` (the labels trained on and the corruption mask), ``summary.json`` and,
when asked for, ``checkpoints.pt``. It is written under a temporary name and renamed into place
in one step, so an interrupted run leaves nothing that a later run would trust.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from sklearn.model_selection import train_test_split

from .activations import check_layers, extract_activations
from .corruption import MODES, check_degree, corrupt_labels, randomize_inputs
from .data import DATASETS, Dataset, load_dataset
from .geometry import class_geometry
from .masc import check_variance_threshold
from .models import MODELS, build_model
from .probes import PROBES, is_well_posed, make_probe, probe_accuracies
from .training import paper_settings, resolve_device, train

__all__ = [
    "RunConfig",
    "Run",
    "best_layers",
    "default_artifacts_dir",
    "geometry_table",
    "headline_table",
    "history_table",
    "layerwise_evaluation",
    "paper_table",
    "run",
    "run_grid",
    "summary_table",
    "validation_split",
]

VALIDATION_FRACTION = 0.2
"""Share of the test set used to choose a layer (the relabel protocol's 20/80 split)."""


def default_artifacts_dir() -> Path:
    """``$MEMNOTEBOOKS_ARTIFACTS``, else ``~/.cache/memnotebooks/artifacts``."""
    return Path(os.environ.get("MEMNOTEBOOKS_ARTIFACTS", Path.home() / ".cache" / "memnotebooks" / "artifacts"))


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a trained model; settings left ``None`` take the paper's.

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
        ``None`` takes :func:`memnotebooks.training.paper_settings`.
    max_epochs : int
    checkpoint_epochs : tuple of int
        Epochs whose weights the run keeps (0 is the initial model).
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

    def __post_init__(self):
        for field, value, allowed in (
            ("dataset", self.dataset, DATASETS),
            ("model", self.model, tuple(MODELS)),
            ("corruption_mode", self.corruption_mode, MODES),
        ):
            if value not in allowed:
                raise ValueError(f"Unknown {field} {value!r}; choose one of: {', '.join(allowed)}.")
        object.__setattr__(self, "corruption_degree", check_degree(self.corruption_degree))
        object.__setattr__(self, "checkpoint_epochs", tuple(sorted({int(e) for e in self.checkpoint_epochs})))
        for name, value in paper_settings(self.model, self.dataset).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A short hash of the configuration: the run's folder name."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **changes) -> RunConfig:
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
        Per-epoch history (see :class:`memnotebooks.training.TrainingResult`).
    summary : dict
        Epochs, whether the target was reached, wall time, device.
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
    def wrong_labels(self) -> np.ndarray:
        """Boolean (n_train,): where the label trained on differs from the true label."""
        return (self.train_labels != self.dataset.y_train).numpy()

    def checkpoint(self, epoch: int) -> nn.Module:
        """A copy of the model with the weights it had at ``epoch`` (one of ``checkpoint_epochs``)."""
        if epoch not in self.config.checkpoint_epochs:
            raise ValueError(f"No checkpoint at epoch {epoch}; this run kept {list(self.config.checkpoint_epochs)}.")
        states = torch.load(self.path / "checkpoints.pt", weights_only=True)
        if epoch not in states:
            raise ValueError(f"Epoch {epoch} was never reached: training stopped at epoch {self.summary['epochs']}.")
        model = _new_model(self.config, self.dataset)
        model.load_state_dict(states[epoch])
        return model.to(next(self.model.parameters()).device).eval()


@functools.lru_cache(maxsize=4)
def _clean_dataset(name, data_root, subset, test_subset) -> Dataset:
    return load_dataset(name, data_root, subset=subset, test_subset=test_subset, seed=0)


def _dataset_for(config: RunConfig, data_root) -> tuple[Dataset, torch.Tensor, np.ndarray]:
    """The dataset as the run sees it, the labels it trains on and the corruption mask."""
    clean = _clean_dataset(config.dataset, None if data_root is None else str(data_root), config.subset, config.test_subset)
    labels, mask = corrupt_labels(
        clean.y_train, config.corruption_degree, clean.n_classes, seed=config.seed, mode=config.corruption_mode
    )
    dataset = clean
    if config.corruption_mode == "random_inputs":
        dataset = dataclasses.replace(clean, x_train=randomize_inputs(clean.x_train, mask, seed=config.seed))
    return dataset, torch.from_numpy(labels), mask


def _new_model(config: RunConfig, dataset: Dataset) -> nn.Module:
    torch.manual_seed(config.seed)
    return build_model(config.model, dataset.input_shape, dataset.n_classes)


def _write_run(path: Path, config: RunConfig, model: nn.Module, result, labels, mask, summary) -> None:
    """Write every file into a fresh temporary folder, then rename it to ``path`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
        result.history.to_csv(tmp / "history.csv", index=False)
        np.savez(tmp / "labels.npz", train_labels=labels.numpy(), corruption_mask=mask)
        if result.checkpoints:
            torch.save(result.checkpoints, tmp / "checkpoints.pt")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (path / "summary.json").exists():  # not another process's finished run
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
        The cache; default :func:`default_artifacts_dir`.
    data_root : path, optional
        Dataset folder for :func:`memnotebooks.data.load_dataset`.
    device : str or torch.device
        Where to train and where the returned model lives.
    progress : bool
        Show training progress.

    Returns
    -------
    Run
    """
    device = resolve_device(device)
    path = Path(artifacts_dir if artifacts_dir is not None else default_artifacts_dir()) / config.key()
    dataset, labels, mask = _dataset_for(config, data_root)
    model = _new_model(config, dataset)
    if not (path / "summary.json").exists():
        result = train(
            model,
            dataset.x_train,
            labels,
            y_true=dataset.y_train,
            x_test=dataset.x_test,
            y_test=dataset.y_test,
            optimizer=config.optimizer,
            learning_rate=config.learning_rate,
            momentum=config.momentum,
            batch_size=config.batch_size,
            target_accuracy=config.target_accuracy,
            max_epochs=config.max_epochs,
            checkpoint_epochs=config.checkpoint_epochs,
            seed=config.seed,
            device=device,
            progress=progress,
        )
        last = result.history.iloc[-1]
        summary = {
            "epochs": result.epochs,
            "reached_target": bool(result.reached_target),
            "train_accuracy": float(last["train_accuracy"]),
            "test_accuracy": float(last["test_accuracy"]),
            "seconds": float(last["seconds"]),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__,
        }
        _write_run(path, config, model, result, labels, mask, summary)
    model.load_state_dict(torch.load(path / "model.pt", weights_only=True))
    return Run(
        config=config,
        path=path,
        dataset=dataset,
        train_labels=labels,
        corruption_mask=mask,
        model=model.to(device).eval(),
        history=pd.read_csv(path / "history.csv"),
        summary=json.loads((path / "summary.json").read_text()),
    )


def run_grid(config: RunConfig, degrees=(0.0,), seeds=(0,), **run_kwargs) -> list[Run]:
    """Runs of ``config`` at every corruption degree and seed (from the cache where possible)."""
    return [run(config.replace(corruption_degree=d, seed=s), **run_kwargs) for d in degrees for s in seeds]


def _config_columns(run_: Run) -> dict:
    c = run_.config
    return {"dataset": c.dataset, "model": c.model, "corruption_degree": c.corruption_degree, "seed": c.seed}


def summary_table(runs) -> pd.DataFrame:
    """One row per run: configuration, epochs trained, and final accuracies."""
    rows = []
    for r in runs:
        last = r.history.iloc[-1].drop(["epoch", "loss", "seconds"]).to_dict()
        rows.append({**_config_columns(r), "epochs": r.summary["epochs"], "reached_target": r.summary["reached_target"], **last})
    return pd.DataFrame(rows)


def history_table(runs) -> pd.DataFrame:
    """All runs' per-epoch histories, stacked, with the configuration columns."""
    return pd.concat([r.history.assign(**_config_columns(r)) for r in runs], ignore_index=True)


def validation_split(y_test, fraction: float = VALIDATION_FRACTION, seed: int = 0) -> np.ndarray:
    """Boolean mask (n_test,): the stratified validation part of the test set (fixed seed)."""
    y_test = np.asarray(y_test)
    validation, _ = train_test_split(np.arange(len(y_test)), train_size=fraction, stratify=y_test, random_state=seed)
    mask = np.zeros(len(y_test), dtype=bool)
    mask[validation] = True
    return mask


def _write_table_atomically(table: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    table.to_csv(tmp, index=False)
    os.replace(tmp, path)


# Read back as text: pandas would otherwise parse the label set "true" as a boolean.
_TEXT_COLUMNS = {name: str for name in ("layer", "probe", "subspace_labels", "split", "target")}


def _fitting_labels(run_: Run, subspace_labels: str) -> np.ndarray:
    """The training labels a probe or a class subspace is fitted on: ``corrupted`` or ``true``."""
    if subspace_labels == "corrupted":
        return run_.train_labels.numpy()
    if subspace_labels == "true":
        return run_.dataset.y_train.numpy()
    raise ValueError(f"Unknown subspace_labels {subspace_labels!r}; choose from: corrupted, true.")


def _evaluation_rows(run_: Run) -> dict:
    """Which rows of the train (or test) activations each scored set takes, and its labels:
    (split, target) -> ("train" or "test", row mask, labels)."""
    y_test = run_.dataset.y_test.numpy()
    validation = validation_split(y_test)
    given, true = _fitting_labels(run_, "corrupted"), _fitting_labels(run_, "true")
    wrong = given != true
    return {
        ("test", "true"): ("test", np.ones(len(y_test), dtype=bool), y_test),
        ("test_validation", "true"): ("test", validation, y_test[validation]),
        ("test_holdout", "true"): ("test", ~validation, y_test[~validation]),
        ("train_clean", "true"): ("train", ~wrong, true[~wrong]),
        ("train_corrupted", "true"): ("train", wrong, true[wrong]),
        ("train_corrupted", "given"): ("train", wrong, given[wrong]),
    }


def layerwise_evaluation(
    run_: Run, probes=("masc",), layers=None, subspace_labels=("corrupted", "true"), variance_threshold: float = 0.99
) -> pd.DataFrame:
    """Decode every probe layer of a run with each probe, fitted on corrupted and on true labels.

    For each layer, probe and choice of fitting labels (``corrupted``: the labels the network was
    trained on; ``true``: the clean ones), the probe is fitted on the training activations and
    scored on the test set (whole, and its validation and holdout parts, see
    :func:`validation_split`), on the clean training points and on the corrupted ones (against
    their true and their given labels). Results are cached in the run's folder, one file per
    probe and set of fitting labels (and, for MASC, per ``variance_threshold``, the share of
    each class's variance its subspace keeps, in (0, 1]).

    Returns
    -------
    DataFrame
        Columns ``dataset``, ``model``, ``corruption_degree``, ``seed``, ``layer``,
        ``layer_index``, ``probe``, ``subspace_labels``, ``split``, ``target``, ``accuracy``,
        ``n_points``.
    """
    layers = check_layers(run_.model, layers)
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"Unknown probe(s) {unknown}; choose from: {', '.join(PROBES)}.")
    variance_threshold = check_variance_threshold(variance_threshold)
    fit_labels = {labels: _fitting_labels(run_, labels) for labels in subspace_labels}
    all_layers = list(run_.model.probe_layers)
    probe_params = {probe: {"variance_threshold": variance_threshold} if probe == "masc" else {} for probe in probes}
    # One cached table per probe (and MASC threshold) and set of fitting labels, covering every layer.
    paths = {
        (probe, labels): run_.path / ("-".join(["evaluation", probe, *map(repr, probe_params[probe].values()), labels]) + ".csv")
        for probe in probes
        for labels in subspace_labels
    }
    missing = [key for key, path in paths.items() if not path.exists()]
    if missing:
        results = {key: [] for key in missing}
        rows = _evaluation_rows(run_)
        for layer in all_layers:  # each layer's activations are extracted once, for every table
            acts = {
                "train": extract_activations(run_.model, run_.dataset.x_train, [layer])[layer].numpy(),
                "test": extract_activations(run_.model, run_.dataset.x_test, [layer])[layer].numpy(),
            }
            evaluation_sets = {key: (acts[source][mask], y) for key, (source, mask, y) in rows.items()}
            train_acts = acts["train"]
            for probe, labels in missing:
                y = fit_labels[labels]
                estimator = make_probe(probe, **probe_params[probe]) if is_well_posed(probe, train_acts, y) else None
                table = probe_accuracies(estimator, train_acts, y, evaluation_sets)
                results[probe, labels].append(table.assign(layer=layer, probe=probe, subspace_labels=labels))
        for key, frames in results.items():
            _write_table_atomically(pd.concat(frames, ignore_index=True), paths[key])
    frames = [pd.read_csv(path, dtype=_TEXT_COLUMNS) for path in paths.values()]
    frames = [table[table.layer.isin(layers)] for table in frames]
    table = pd.concat(frames, ignore_index=True)
    table["layer_index"] = table.layer.map(all_layers.index)
    columns = ["layer", "layer_index", "probe", "subspace_labels", "split", "target", "accuracy", "n_points"]
    return table[columns].assign(**_config_columns(run_))[list(_config_columns(run_)) + columns]


def best_layers(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Best layer per (dataset, model, degree, probe, subspace labels), chosen two ways.

    ``paper_*``: as the paper reports it, the maximum over layers of the mean (over seeds) test
    accuracy: the layer is chosen on the very set it is scored on, which flatters it.
    ``validated_*``: the layer with the best mean accuracy on the validation 20 % of the test
    set, scored on the other 80 %.
    """
    keys = ["dataset", "model", "corruption_degree", "probe", "subspace_labels"]
    mean = evaluation.groupby(keys + ["layer", "split", "target"], as_index=False)["accuracy"].mean()

    def pick(split_choose, split_score, prefix):
        choose = mean[(mean.split == split_choose) & (mean.target == "true")]
        best = choose.loc[choose.groupby(keys)["accuracy"].idxmax(), keys + ["layer"]]
        scored = best.merge(mean[(mean.split == split_score) & (mean.target == "true")], on=keys + ["layer"])
        return scored[keys + ["layer", "accuracy"]].rename(columns={"layer": f"{prefix}_layer", "accuracy": f"{prefix}_accuracy"})

    return pick("test", "test", "paper").merge(pick("test_validation", "test_holdout", "validated"), on=keys)


def headline_table(evaluation: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's headline per degree: the network's test accuracy and MASC's at the best layer.

    For each fitting-label set (``corrupted``, ``true``): ``masc_<labels>`` and its layer as the
    paper selects it (on the test set), and ``masc_<labels>_validated`` with its layer chosen on
    the validation 20 % and scored on the other 80 % (see :func:`best_layers`). Means over seeds.
    """
    keys = ["dataset", "model", "corruption_degree"]
    table = summary.groupby(keys, as_index=False)["test_accuracy"].mean().rename(columns={"test_accuracy": "model_test"})
    best = best_layers(evaluation[evaluation.probe == "masc"])
    for labels in ("corrupted", "true"):
        part = best[best.subspace_labels == labels].rename(
            columns={
                "paper_accuracy": f"masc_{labels}",
                "paper_layer": f"masc_{labels}_layer",
                "validated_accuracy": f"masc_{labels}_validated",
                "validated_layer": f"masc_{labels}_validated_layer",
            }
        )
        table = table.merge(part.drop(columns=["probe", "subspace_labels"]), on=keys, how="left")
    return table


def geometry_table(run_: Run, layers=None, subspace_labels: str = "true", variance_threshold: float = 0.99) -> pd.DataFrame:
    """Per layer and class: subspace dimension, its share of the width, participation ratio and
    mean principal angle to the other classes (:func:`memnotebooks.geometry.class_geometry`),
    from the training activations grouped by their true or their corrupted labels."""
    layers = check_layers(run_.model, layers)
    variance_threshold = check_variance_threshold(variance_threshold)
    labels = _fitting_labels(run_, subspace_labels)
    frames = []
    for layer, values in extract_activations(run_.model, run_.dataset.x_train, layers).items():
        table = class_geometry(values.numpy(), labels, variance_threshold)
        frames.append(
            table.assign(
                layer=layer,
                layer_index=list(run_.model.probe_layers).index(layer),
                n_features=values.shape[1],
                subspace_labels=subspace_labels,
            )
        )
    return pd.concat(frames, ignore_index=True).assign(**_config_columns(run_))


PAPER_NAMES = {
    "model": {"mlp": "MLP", "cnn": "CNN", "alexnet": "AlexNet", "resnet18": "ResNet18"},
    "dataset": {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100", "tiny_imagenet": "TinyImageNet"},
}


def paper_table(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The paper's table (Ketha & Ramaswamy 2025): model test accuracy and MASC at the best layer
    (test-selected) with corrupted and true subspaces, mean of 3 runs, with this package's
    model and dataset names. Read from ``data/paper_table.csv`` in the repository."""
    path = Path(path) if path is not None else Path(__file__).resolve().parents[1] / "data" / "paper_table.csv"
    if not path.is_file():
        raise FileNotFoundError(f"The paper's table is not at {path}; it ships in the repository's data/ folder.")
    table = pd.read_csv(path, comment="#")
    for column, names in PAPER_NAMES.items():
        table[column] = table[column].map({paper: ours for ours, paper in names.items()})
    return table
