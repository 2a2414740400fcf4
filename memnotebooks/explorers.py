"""Interactive explorers for JupyterLab: a few controls above the figure they drive.

Each explorer is one call from a chapter and returns an :class:`Explorer`, an ipywidgets box. In
JupyterLab (a live kernel) moving a control redraws the figure; controls whose change costs
computation update on release (``continuous_update=False``). In the static book, which has no
kernel, the same output carries the figure of the explorer's current view as an image (the
book's configuration drops the widget view), so a page shows the default view as an ordinary
figure.

A view that cannot be drawn (a layer, probe or method that does not exist, a table not in the
cache while computing is off) shows its message in the output area; the controls stay usable.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import decoding, plotting, prose, relabel
from .corruption import MODES, corrupt_labels, wrong_fraction
from .data import validation_split
from .dynamics import checkpointed_epochs
from .probes import PROBE_NAMES, PROBES
from .runs import FIT_LABELS, Run

__all__ = ["Explorer", "THRESHOLDS", "corruption_explorer", "decoding_explorer", "epoch_explorer", "relabel_explorer"]

THRESHOLDS = (0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
"""The variance thresholds the decoding explorer offers (the paper's is 0.99)."""

_WIDE = {"description_width": "initial"}


class Explorer(widgets.VBox):
    """Controls above the output of ``view`` for their values.

    Parameters
    ----------
    view : callable
        Called with the controls' values as keyword arguments; returns a matplotlib ``Figure`` or
        ``Axes``, and raises (``ValueError``, ``LookupError``, ``OSError``, ...) with a message for
        a view it cannot draw.
    controls : mapping of str to ipywidgets.ValueWidget
        Keyword of ``view`` to the control that sets it.
    description : str
        What the explorer shows (the plain-text form of its output).
    requested : mapping, optional
        Values for the first view that override the controls' (a value not among a control's
        choices reaches ``view``, which says why it cannot be drawn).

    Attributes
    ----------
    output : ipywidgets.Output
        Where the view is drawn.
    message : str or None
        The message of the current view when it could not be drawn, else ``None``.
    """

    def __init__(self, view: Callable, controls: Mapping[str, widgets.ValueWidget], description: str, requested: Mapping | None = None):
        self.view, self.controls, self.description = view, dict(controls), description
        self.output = widgets.Output()
        self.message: str | None = None
        self._data: dict = {}
        row = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([row, self.output])
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self.refresh(**dict(requested or {}))

    @property
    def values(self) -> dict:
        """The controls' current values, by keyword of ``view``."""
        return {name: control.value for name, control in self.controls.items()}

    def refresh(self, **values) -> None:
        """Draw the view for the controls' values, or for ``values`` where given."""
        try:
            shown = self.view(**{**self.values, **values})
        except Exception as error:  # noqa: BLE001 -- any failure is shown in the view, never a traceback that kills it
            self.message = f"{error}" if isinstance(error, (ValueError, LookupError, OSError)) else f"{type(error).__name__}: {error}"
            self._data = {"text/plain": self.message, "text/html": f'<p style="color:#b00020">{_escape(self.message)}</p>'}
        else:
            self.message = None
            self._data = _figure_data(getattr(shown, "figure", shown))
        self.output.outputs = ({"output_type": "display_data", "data": self._data, "metadata": {}},)

    def _changed(self, change) -> None:
        self.refresh()

    def _repr_mimebundle_(self, **kwargs):
        # The widget view for JupyterLab; the current view's image (or message) for a page without
        # a kernel, which renders it instead (the book's configuration drops the widget view).
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        return {**self._data, **bundle, "text/plain": f"{self.description} (live in JupyterLab)"}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _figure_data(figure) -> dict:
    """A figure as a display bundle (PNG), and closed, so that it is not drawn a second time."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"), "text/plain": "<Figure>"}


def _choice(value, choices, name: str):
    """``value`` if it is one of ``choices`` (values, or (label, value) pairs), else an error naming them."""
    values = [c[1] if isinstance(c, tuple) else c for c in choices]
    if value not in values:
        raise ValueError(f"Unknown {name} {value!r}; choose from: {', '.join(map(str, values))}.")
    return value


def _dropdown(description: str, choices, value):
    """A dropdown on ``value``, or on the first choice when ``value`` is not one (the view reports it)."""
    values = [c[1] if isinstance(c, tuple) else c for c in choices]
    return widgets.Dropdown(options=choices, value=value if value in values else values[0], description=description, style=_WIDE)


def _run_choices(runs_) -> list[tuple[str, int]]:
    return [(f"p = {r.config.corruption_degree:g}, seed {r.config.seed}", i) for i, r in enumerate(runs_)]


def corruption_explorer(labels, n_classes: int, degree: float = 0.6, mode: str = "uniform", seed: int = 0) -> Explorer:
    """The true × given label matrix of ``labels`` corrupted to ``degree`` in ``mode``, and the
    share of labels it made wrong against the expected ``p(C-1)/C``.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        True integer labels in ``[0, n_classes)``.
    n_classes : int
    degree : float in [0, 1]
    mode : {"uniform", "permute", "random_inputs"}
    seed : int

    Returns
    -------
    Explorer
    """
    def view(degree, mode, seed):
        _choice(mode, MODES, "mode")
        corrupted = corrupt_labels(labels, degree, n_classes, seed=seed, mode=mode)
        table = pd.DataFrame({"true_label": np.asarray(labels), "given_label": corrupted.labels})
        ax = plotting.label_matrix(table, vmax=None, annotate=n_classes <= 10)
        expected = degree * (n_classes - 1) / n_classes if mode != "random_inputs" else 0.0
        ax.set_title(f"p = {degree:g}, {mode} (seed {seed}): {prose.percent(wrong_fraction(table.true_label, table.given_label), 1)} wrong, "
                     f"expected {prose.percent(expected, 1)}", fontsize="medium")
        return ax

    controls = {
        "degree": widgets.FloatSlider(value=min(max(degree, 0.0), 1.0), min=0.0, max=1.0, step=0.05, description="degree p", continuous_update=False, style=_WIDE),
        "mode": _dropdown("mode", list(MODES), mode),
        "seed": widgets.IntText(value=seed, description="seed", style=_WIDE, layout=widgets.Layout(width="9em")),
    }
    return Explorer(view, controls, "Label matrix of the corrupted labels", requested={"degree": degree, "mode": mode})


def decoding_explorer(runs_: list[Run], layer: str | None = None, probe: str = "masc", variance_threshold: float = 0.99,
                      fit_labels: str = "corrupted", run: int = 0, compute: bool = True) -> Explorer:
    """One layer of one run decoded by one probe: its accuracies on each set of
    :data:`memnotebooks.decoding.PROTOCOL` (from the cached evaluation tables,
    :func:`memnotebooks.decoding.layerwise_evaluation`) and MASC's angles on the holdout part
    (:func:`memnotebooks.decoding.test_angles`: a forward pass and a MASC fit).

    Parameters
    ----------
    runs_ : list of Run
    layer : str, optional
        One of the runs' probe layers; default the first hidden one.
    probe : str
        One of :data:`memnotebooks.probes.PROBES`.
    variance_threshold : float in (0, 1]
        MASC's (for the angles, and for the accuracies when ``probe`` is MASC).
    fit_labels : {"corrupted", "true"}
    run : int
        Index in ``runs_`` of the run shown first.
    compute : bool
        Compute evaluation tables missing from the cache; with ``False`` the view says which are missing.

    Returns
    -------
    Explorer
    """
    runs_ = list(runs_)
    layers = list(runs_[0].model.probe_layers)
    layer = decoding.hidden_layers(runs_[0])[0] if layer is None else layer

    def view(run, layer, probe, variance_threshold, fit_labels):
        run_ = runs_[_choice(run, _run_choices(runs_), "run")]
        _choice(layer, layers, "layer")
        _choice(probe, PROBES, "probe")
        _choice(fit_labels, FIT_LABELS, "fit_labels")
        evaluation = decoding.layerwise_evaluation(run_, probes=[probe], layers=[layer], fit_labels=[fit_labels],
                                                   variance_threshold=variance_threshold, compute=compute)
        angles = decoding.test_angles(run_, layer, fit_labels=fit_labels, variance_threshold=variance_threshold)
        figure = plotting.layer_decoding(evaluation, angles)
        figure.suptitle(f"{PROBE_NAMES[probe]} on {layer}, {fit_labels} labels, p = {run_.config.corruption_degree:g}, seed {run_.config.seed}"
                        + (f", t = {variance_threshold:g}" if probe == "masc" else ""), fontsize="medium")
        return figure

    controls = {
        "run": _dropdown("run", _run_choices(runs_), run),
        "layer": _dropdown("layer", layers, layer),
        "probe": _dropdown("probe", [(PROBE_NAMES[p], p) for p in PROBES], probe),
        "variance_threshold": widgets.SelectionSlider(options=sorted({*THRESHOLDS, variance_threshold}) if 0 < variance_threshold <= 1 else THRESHOLDS,
                                                      value=variance_threshold if 0 < variance_threshold <= 1 else 0.99,
                                                      description="variance threshold t", continuous_update=False, style=_WIDE,
                                                      layout=widgets.Layout(width="26em")),
        "fit_labels": _dropdown("fitted on", [(f"{f} labels", f) for f in FIT_LABELS], fit_labels),
    }
    requested = {"run": run, "layer": layer, "probe": probe, "fit_labels": fit_labels, "variance_threshold": variance_threshold}
    return Explorer(view, controls, "One layer decoded: accuracies and MASC angles", requested=requested)


def relabel_explorer(runs_: list[Run], table: pd.DataFrame, method: str = "masc_crossfit", run: int = 0, **settings) -> Explorer:
    """One relabelling of one run: the true × new label matrix and the holdout accuracy before
    and after fine-tuning on the new labels.

    Parameters
    ----------
    runs_ : list of Run
        The runs ``table`` was computed on.
    table : DataFrame
        :func:`memnotebooks.relabel.relabel_grid` output; its fine-tuned methods (``start`` =
        ``"memorized"``) that change labels are offered.
    method : str
    run : int
        Index in ``runs_`` of the run shown first.
    **settings
        The relabelling settings ``table`` was computed with (``max_epochs``, ``patience``, ...).

    Returns
    -------
    Explorer
    """
    runs_ = list(runs_)
    tuned = table[table.start == "memorized"]
    methods = [m for m in dict.fromkeys(tuned.method) if m != "early_stopped"]

    def view(run, method):
        run_ = runs_[_choice(run, _run_choices(runs_), "run")]
        _choice(method, methods, "method (of this table)")
        row = tuned[(tuned.method == method) & (tuned.corruption_degree == run_.config.corruption_degree) & (tuned.seed == run_.config.seed)]
        if row.empty:
            raise LookupError(f"The table has no {method!r} row for p = {run_.config.corruption_degree:g}, seed {run_.config.seed}.")
        labels = relabel.relabelled_labels(run_, method, **settings)
        row = row.iloc[0]
        ax = plotting.label_matrix(labels, column="new_label", vmax=1.0)
        ax.set_title(f"{relabel.METHOD_NAMES[method]}, p = {run_.config.corruption_degree:g}, seed {run_.config.seed}\n"
                     f"labels {prose.percent(row.label_accuracy, 1)} true; holdout accuracy {prose.accuracy(row.accuracy_before)} "
                     f"before, {prose.accuracy(row.accuracy_after)} after", fontsize="medium")
        return ax

    controls = {
        "run": _dropdown("run", _run_choices(runs_), run),
        "method": _dropdown("method", [(relabel.METHOD_NAMES[m], m) for m in methods], method),
    }
    return Explorer(view, controls, "A relabelling: the new labels and the accuracy before and after", requested={"run": run, "method": method})


def epoch_explorer(runs_: list[Run], probes=("masc", "velpic"), epoch: int | None = None, run: int = 0, compute: bool = True) -> Explorer:
    """Every layer of one run at one checkpoint: each probe's holdout accuracy (fitted with the
    corrupted labels) against the network's own at that epoch. Sliding the epoch shows where in
    depth, and when, decoding falls as the network memorizes.

    Parameters
    ----------
    runs_ : list of Run
        Runs with ``checkpoint_epochs``; the epochs offered are those every run checkpointed.
    probes : list of str
    epoch : int, optional
        First epoch shown; default the first checkpoint.
    run : int
        Index in ``runs_`` of the run shown first.
    compute : bool
        Compute evaluation tables missing from the cache; with ``False`` the view says which are missing.

    Returns
    -------
    Explorer
    """
    runs_ = list(runs_)
    epochs = sorted(set.intersection(*(set(checkpointed_epochs(r)) for r in runs_)))
    if not epochs:
        raise ValueError("The runs share no checkpointed epoch (RunConfig.checkpoint_epochs).")
    epoch = epochs[0] if epoch is None else epoch

    def view(run, epoch):
        run_ = runs_[_choice(run, _run_choices(runs_), "run")]
        _choice(epoch, epochs, "epoch (checkpointed by every run)")
        evaluation = decoding.layerwise_evaluation(run_, probes=list(probes), fit_labels=["corrupted"], epoch=epoch, compute=compute)
        y_test = run_.dataset.y_test.numpy()
        holdout = ~validation_split(y_test)
        network = float((run_.test_predictions[epoch][holdout] == y_test[holdout]).mean())
        ax = plotting.layer_at_epoch(evaluation, network)
        ax.set_title(f"Epoch {epoch}, p = {run_.config.corruption_degree:g}, seed {run_.config.seed}: network {prose.accuracy(network)} on the holdout", fontsize="medium")
        return ax

    controls = {
        "run": _dropdown("run", _run_choices(runs_), run),
        "epoch": widgets.SelectionSlider(options=epochs, value=epoch if epoch in epochs else epochs[0], description="epoch", continuous_update=False, style=_WIDE),
    }
    return Explorer(view, controls, "Every layer at one checkpoint", requested={"run": run, "epoch": epoch})
