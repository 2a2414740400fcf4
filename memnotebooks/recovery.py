"""Every way this book has of recovering generalization from a memorized run, on one footing.

One table per run (:func:`recovery_table`), every choice made on the validation part of the test
set with its *true* labels and every row scored on the holdout part (chapter 05's split,
:func:`memnotebooks.data.validation_split`), with each holdout image's hit so that the rows can
be compared image by image (:func:`recovery_differences`):

- the memorized network, and the network stopped early (its best validation epoch);
- the best rewinding of the last layers (:mod:`memnotebooks.rewinding`);
- a probe at its best layer (MASC, VeLPIC, ...: :mod:`memnotebooks.decoding`), fitted on the
  corrupted training labels;
- relabel + retrain (:mod:`memnotebooks.relabel`);
- the network with a linear readout written into its last layer (:mod:`memnotebooks.editing`),
  at the epoch whose edited network scores best on the validation part.

:func:`recovery_grid` stacks several runs, :func:`recovery_summary` gives mean ± std over seeds,
:func:`recovery_display` and :func:`recovery_name` put the rows in words.
"""

from __future__ import annotations

import pandas as pd

from .data import validation_split
from .decoding import best_layer_scores, layerwise_evaluation
from .editing import READOUTS, check_readout, editing_table
from .models import weight_layers
from .probes import PROBE_NAMES, PROBES
from .relabel import METHOD_NAMES, relabel_table
from .runs import Run, early_stopped, rows_of
from .tables import mean_std_table, paired_differences
from .uncertainty import pack_hits

__all__ = [
    "RECOVERY_NAMES",
    "RELABEL_METHODS",
    "recovery_differences",
    "recovery_display",
    "recovery_grid",
    "recovery_name",
    "recovery_summary",
    "recovery_table",
]

RELABEL_METHODS = ("masc_corrupted", "masc_crossfit")
"""The relabellings :func:`recovery_table` retrains with: the paper's (in-sample MASC) and its
out-of-fold variant (chapter 06)."""

def _probe_rows(run_: Run, probes) -> list[tuple]:
    if not probes:
        return []
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"Unknown probe(s) {unknown}; choose from: {', '.join(PROBES)}.")
    best = best_layer_scores(layerwise_evaluation(run_, probes=tuple(probes), fit_labels="corrupted"), selections=("validated",))
    rows = []
    for probe in probes:
        chosen = best[best.probe == probe]
        if len(chosen):  # a probe not well posed at any layer has no row
            row = chosen.iloc[0]
            rows.append((PROBE_NAMES[probe], f"layer {row.layer}", row.accuracy, row.get("hits")))
    return rows


def _edit_rows(run_: Run, readouts) -> list[tuple]:
    if not readouts:
        return []
    for readout in readouts:
        check_readout(readout)
    table = editing_table(run_, readouts=tuple(readouts))
    final = int(table.epoch.max())
    rows = []
    for readout in readouts:
        own = table[table.readout == readout].pivot_table(index="epoch", columns="split", values="accuracy", aggfunc="first")
        # A readout fitted on the validation part cannot be chosen there: it edits the final network.
        validated = READOUTS[readout].fitted_on != "validation"
        epoch = int(own.test_validation.idxmax()) if validated else final
        chosen = table[(table.readout == readout) & (table.epoch == epoch) & (table.split == "test_holdout")].iloc[0]
        choice = f"epoch {epoch}" if validated else f"epoch {epoch} (the last; fitted on validation)"
        rows.append((f"edited, {readout}", choice, chosen.accuracy, chosen.hits))
    return rows


def recovery_table(run_: Run, rewinding: pd.DataFrame, relabel_methods=RELABEL_METHODS, probes=("masc",), readouts=(), **relabel_settings) -> pd.DataFrame:
    """Ways of recovering generalization from a memorized run, each chosen on the validation part
    of the test set and scored on the holdout part (chapter 05's split).

    Parameters
    ----------
    run_ : Run
        A run with ``checkpoint_epochs`` (rewinding and editing read its checkpoints).
    rewinding : DataFrame
        :func:`memnotebooks.rewinding.rewinding_table` of this run; the best partial rewinding
        (``L`` below all layers, since rewinding every layer is the checkpoint and so an early
        stop) is chosen on validation accuracy.
    relabel_methods : list of str
        Relabellings of :func:`memnotebooks.relabel.relabel_table` (with ``relabel_settings``),
        each retrained (chapter 06); empty for none.
    probes : list of str
        Probes of :data:`memnotebooks.probes.PROBES`, each at its validated best layer with the
        corrupted training labels (chapter 05); empty for none.
    readouts : list of str
        Linear readouts of :data:`memnotebooks.editing.READOUTS` written into the last layer
        (chapter 10), at the checkpoint (or final epoch) whose edited network scores best on the
        validation part; one fitted on the validation part edits the final network.

    Returns
    -------
    DataFrame
        Index ``recovery`` (``memorized``, ``stopped early``, ``rewound``, the probes' names of
        :data:`memnotebooks.probes.PROBE_NAMES`, ``retrained, <method>``, ``edited, <readout>``); columns ``choice``
        (what was chosen on the validation part: the epoch, ``L`` and epoch, the layer, the layer
        the labels came from and the fine-tuning epoch kept, or the epoch edited),
        ``holdout accuracy``, ``corruption_degree``, ``seed`` and ``hits`` (which holdout images
        each row predicts right, packed: :func:`memnotebooks.uncertainty.pack_hits`; a
        relabelling row has them when :func:`memnotebooks.relabel.relabel_table` gives them, else
        none). Every choice reads the *true* labels of the validation part.
    """
    history = run_.history
    early = early_stopped(history)
    partial = rewinding[rewinding.layers_rewound < len(weight_layers(run_.model))]
    best = partial.loc[partial.test_validation_accuracy.idxmax()]
    y_test = run_.dataset.y_test.numpy()
    holdout = ~validation_split(y_test)
    right = run_.test_predictions == y_test

    def network(epoch) -> str:
        return pack_hits(right[int(epoch)][holdout])

    rows = [
        ("memorized", f"epoch {int(history.epoch.iloc[-1])}", history.test_holdout_accuracy.iloc[-1], network(history.epoch.iloc[-1])),
        ("stopped early", f"epoch {int(early.epoch)}", early.test_holdout_accuracy, network(early.epoch)),
        ("rewound", f"L = {int(best.layers_rewound)}, epoch {int(best.epoch)}", best.test_holdout_accuracy, best.get("hits")),
        *_probe_rows(run_, probes),
    ]
    if relabel_methods:
        for row in relabel_table(run_, list(relabel_methods), **relabel_settings).to_dict("records"):
            hits = row.get("hits_after", row.get("hits"))
            rows.append((f"retrained, {row['method']}", f"{row['layer']}, epoch {int(row['best_epoch'])}", row["accuracy_after"], hits))
    rows += _edit_rows(run_, readouts)
    table = pd.DataFrame(rows, columns=["recovery", "choice", "holdout accuracy", "hits"]).set_index("recovery")
    table = table.assign(corruption_degree=run_.config.corruption_degree, seed=run_.config.seed)[["choice", "holdout accuracy", "corruption_degree", "seed", "hits"]]
    return table.assign(**{"holdout accuracy": table["holdout accuracy"].astype(float).round(3)})


def recovery_grid(runs, rewinding: pd.DataFrame, relabel_methods=RELABEL_METHODS, probes=("masc",), readouts=(), **relabel_settings) -> pd.DataFrame:
    """:func:`recovery_table` of several runs, each with its own rows of ``rewinding``
    (:func:`memnotebooks.rewinding.rewinding_grid`), stacked under an index level ``run``
    (``"p = 0.8, seed 0"``)."""
    tables = {
        f"p = {r.config.corruption_degree}, seed {r.config.seed}": recovery_table(r, rows_of(rewinding, r), relabel_methods, probes, readouts, **relabel_settings)
        for r in runs
    }
    return pd.concat(tables, names=["run"])


RECOVERY_NAMES = {
    "memorized": "memorized network",
    "stopped early": "network stopped early",
    "rewound": "best rewinding",
    **{row: f"{row} at its best layer" for row in PROBE_NAMES.values()},
}
"""The rows of :func:`recovery_table` in words (relabellings and edits: :func:`recovery_name`)."""

_OWN_LABELS = {"masc_corrupted": "in-sample MASC labels", "masc_crossfit": "out-of-fold MASC labels"}


def recovery_name(recovery: str) -> str:
    """A row of :func:`recovery_table` in words: ``"retrained, masc_crossfit"`` is
    ``"retrained on out-of-fold MASC labels"``; another relabelling is ``"retrained, "`` and its
    name in :data:`memnotebooks.relabel.METHOD_NAMES` (``"retrained, true labels"``);
    ``"edited, velpic"`` is ``"edited with VeLPIC"`` (:data:`memnotebooks.editing.READOUTS`)."""
    if recovery.startswith("retrained, "):
        method = recovery.removeprefix("retrained, ")
        return f"retrained on {_OWN_LABELS[method]}" if method in _OWN_LABELS else f"retrained, {METHOD_NAMES.get(method, method)}"
    if recovery.startswith("edited, "):
        readout = recovery.removeprefix("edited, ")
        return f"edited with {READOUTS[readout].name}" if readout in READOUTS else recovery
    return RECOVERY_NAMES.get(recovery, recovery)


def recovery_display(recoveries: pd.DataFrame) -> pd.DataFrame:
    """:func:`recovery_table` of several runs (stacked, e.g. ``pd.concat`` keyed by run) for the
    page: the rows in words, the choice and the holdout accuracy."""
    return recoveries[["choice", "holdout accuracy"]].rename(index=recovery_name, level=-1)


def recovery_summary(recoveries: pd.DataFrame) -> pd.DataFrame:
    """Stacked :func:`recovery_table` s as one table: a row per way of recovering (in words), a
    column per corruption degree, holdout accuracy as mean ± std over the seeds
    (:func:`memnotebooks.tables.mean_std_table`; the mean alone with one seed)."""
    table = recoveries.reset_index(level="recovery")
    return mean_std_table(table.assign(recovery=table.recovery.map(recovery_name)), "recovery", "holdout accuracy")


def recovery_differences(recoveries: pd.DataFrame, reference: str = "stopped early") -> pd.DataFrame:
    """Each row of stacked :func:`recovery_table` s minus ``reference``, per degree, with its
    paired interval over holdout images and seeds (:func:`memnotebooks.tables.paired_differences`,
    column ``recovery``). Rows without per-image hits are left out (they get no verdict)."""
    table = recoveries.reset_index(level="recovery")
    with_hits = table[table.hits.notna() & (table.hits != "")]
    others = [r for r in dict.fromkeys(with_hits.recovery) if r != reference]
    return paired_differences(with_hits, reference, others, column="recovery")
