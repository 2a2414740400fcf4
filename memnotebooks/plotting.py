"""Seaborn figures shared by the chapters.

Each function takes a tidy ``pandas.DataFrame`` (one observation a row, as the package's table
functions return) and returns the matplotlib ``Figure`` or ``Axes`` it drew, so a chapter can
adjust or save it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd
import seaborn as sns

from .editing import READOUT_NAMES, UNEDITED
from .probes import PROBE_NAMES
from .relabel import BEFORE, METHOD_NAMES, scores as relabel_scores

__all__ = [
    "ACCURACY_LABELS",
    "GRADIENT_MEASURES",
    "MANIFOLD_MEASURES",
    "SINGLE_DIRECTION",
    "SPLIT_NAMES",
    "baselines",
    "decoding_by_layer",
    "decoding_over_epochs",
    "edit_training",
    "editing_over_epochs",
    "final_accuracies",
    "gradients",
    "label_matrices",
    "label_matrix",
    "layer_at_epoch",
    "layer_decoding",
    "layer_embeddings",
    "layer_geometry",
    "learning_epochs",
    "layer_widths",
    "manifold_layers",
    "manifold_layers_by_degree",
    "paper_comparison",
    "paper_differences",
    "paper_differences_by_pair",
    "probe_comparison",
    "probes_by_layer",
    "regularization",
    "relabel_accuracy",
    "relabel_labels",
    "setting_curves",
    "subspace_angles",
    "threshold_sweep",
    "training_curves",
    "wrong_fraction",
]

ACCURACY_LABELS = {
    "train_accuracy": "training set, given labels",
    "clean_accuracy": "clean subset",
    "corrupted_accuracy_given": "corrupted subset, given labels",
    "corrupted_accuracy_true": "corrupted subset, true labels",
    "test_accuracy": "test set",
}
"""Legend names of the history's accuracy columns."""



SPREAD = "sd"
"""Error bars and bands over seeds: one standard deviation (deterministic, unlike a bootstrap)."""

sns.set_theme(context="notebook", style="whitegrid")


def _axes(ax, figsize):
    return ax if ax is not None else plt.subplots(figsize=figsize, layout="constrained")[1]


def label_matrix(labels: pd.DataFrame, ax=None, normalize: bool = True, column: str = "given_label", vmax=1.0, annotate: bool = False):
    """Heatmap of a label (default the given one) against the true label.

    Parameters
    ----------
    labels : DataFrame
        Columns ``true_label`` and ``column``, one row per training point.
    normalize : bool
        Show each true class's row as fractions (summing to 1) rather than counts.
    column : str
        The label on the horizontal axis, e.g. ``"new_label"`` of
        :func:`memnotebooks.relabel.relabelled_labels`.
    vmax : float or None
        Top of the colour scale (with ``normalize``); ``None`` caps it at the largest cell, so
        the scale spans the shares shown. Panels to be compared keep a common ``vmax``.
    annotate : bool
        Write each cell's value in it (two decimals, or counts).
    """
    ax = _axes(ax, (5.6, 4.6) if annotate else (5, 4.2))
    table = pd.crosstab(labels["true_label"], labels[column], normalize="index" if normalize else False)
    top = (float(table.to_numpy().max()) if vmax is None else vmax) if normalize else None
    sns.heatmap(table, ax=ax, cmap="rocket_r", vmin=0, vmax=top, square=True, annot=annotate, fmt=".2f" if normalize else "d",
                annot_kws={"fontsize": 6.5}, cbar_kws={"label": "share of the true class" if normalize else "count"})
    ax.set(xlabel=column.replace("_", " "), ylabel="true label")
    return ax


def label_matrices(labels: dict, column: str = "given_label", vmax=1.0):
    """:func:`label_matrix` of several label tables side by side on one colour scale, one panel
    each, titled by its key (``labels``: title to table); returns the Figure."""
    fig, axes = plt.subplots(1, len(labels), figsize=(13 * len(labels) / 3, 4), layout="constrained", squeeze=False)
    for ax, (title, table) in zip(axes[0], labels.items()):
        label_matrix(table, ax=ax, column=column, vmax=vmax).set_title(title)
    return fig


def wrong_fraction(table: pd.DataFrame, ax=None):
    """Measured fraction of wrong labels against the corruption degree, with its expectation.

    ``table`` is :func:`memnotebooks.corruption.corruption_table`'s output.
    """
    ax = _axes(ax, (5, 3.8))
    sns.lineplot(table, x="corruption_degree", y="wrong_fraction", hue="mode", marker="o", errorbar=("pi", 100), err_style="bars", err_kws={"capsize": 3}, ax=ax)
    expected = table.dropna(subset="expected_wrong_fraction").drop_duplicates("corruption_degree")
    if len(expected):
        ax.plot(expected["corruption_degree"], expected["expected_wrong_fraction"], "k--", lw=1, label="p (C-1)/C")
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="p")
    ax.legend()
    ax.set(xlabel="corruption degree p", ylabel="fraction of wrong labels")
    return ax


def training_curves(history: pd.DataFrame, columns=None, panel: str = "corruption_degree", panel_title: str = "p = {col_name}"):
    """Accuracy per epoch on each subset, one panel per value of ``panel`` (the corruption
    degree by default; e.g. a :class:`memnotebooks.runs.RunConfig` field that
    :func:`memnotebooks.runs.history_table` added), titled by ``panel_title``.

    ``history`` is :func:`memnotebooks.runs.history_table`'s output.
    """
    columns = list(columns or ACCURACY_LABELS)
    long = history.melt(id_vars=["epoch", panel, "seed"], value_vars=columns, var_name="subset", value_name="accuracy")
    long["subset"] = long["subset"].map(ACCURACY_LABELS)
    grid = sns.relplot(
        long.dropna(subset="accuracy"),
        x="epoch",
        y="accuracy",
        hue="subset",
        col=panel,
        kind="line",
        col_wrap=min(3, history[panel].nunique()),
        height=2.6,
        aspect=1.1,
        errorbar=SPREAD,
        facet_kws={"sharex": False},
    )
    sns.move_legend(grid, "upper center", bbox_to_anchor=(0.45, 0.0), ncol=2, title=None, frameon=False)
    grid.set_titles(panel_title)
    grid.set(ylim=(-0.02, 1.02))  # a curve at 0 stays visible above the axis
    for ax in grid.axes.flat:
        ax.xaxis.get_major_locator().set_params(integer=True)
    return grid.figure


def final_accuracies(summary: pd.DataFrame, ax=None):
    """Final training and test accuracy against the corruption degree.

    ``summary`` is :func:`memnotebooks.runs.summary_table`'s output.
    """
    ax = _axes(ax, (5, 3.8))
    long = summary.melt(
        id_vars=["corruption_degree", "seed"], value_vars=["train_accuracy", "test_accuracy"], var_name="set", value_name="accuracy"
    )
    long["set"] = long["set"].map({"train_accuracy": "training (given labels)", "test_accuracy": "test"})
    sns.lineplot(long, x="corruption_degree", y="accuracy", hue="set", marker="o", errorbar=SPREAD, ax=ax)
    ax.set(xlabel="corruption degree p", ylabel="accuracy", ylim=(0, 1.02))
    return ax


def layer_widths(layers: pd.DataFrame, ax=None):
    """Bar chart of probe-layer widths ``d`` (log scale); ``layers`` from ``activations.layer_table``.
    Layers are named in words: ``fc2`` is "dense 2"."""
    ax = _axes(ax, (5, 3))
    named = layers.assign(layer=layers["layer"].str.replace(r"^fc(\d+)$", r"dense \1", regex=True))
    sns.barplot(named, x="layer", y="n_features", color="C0", ax=ax)
    ax.set(yscale="log", xlabel="probe layer", ylabel="width d (features)", ylim=(None, 3 * layers["n_features"].max()))
    ax.bar_label(ax.containers[0], fmt="%d")
    return ax


def layer_embeddings(points: pd.DataFrame):
    """Scatter of each layer's 2-D projection, coloured by label; rows are corruption degrees.

    ``points`` is :func:`memnotebooks.activations.embed_2d`'s output with a ``corruption_degree``
    column added; ``label`` is shown as the true label. Panels are titled in words (``fc2`` is
    "dense layer 2").
    """
    points = points.assign(layer=points["layer"].str.replace(r"^fc(\d+)$", r"dense layer \1", regex=True)).rename(columns={"label": "true label"})
    grid = sns.relplot(
        points,
        x="component_1",
        y="component_2",
        hue="true label",
        row="layer",
        col="corruption_degree",
        palette="tab10",
        s=10,
        linewidth=0,
        height=2.1,
        aspect=1.35,
        facet_kws={"sharex": False, "sharey": False},
    )
    grid.set_titles("{row_name} · p = {col_name}")
    grid.set(xticks=[], yticks=[], xlabel="PC 1", ylabel="PC 2")
    return grid.figure


def _in_layer_order(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("layer_index", kind="stable") if "layer_index" in table else table


def layer_geometry(geometry: pd.DataFrame):
    """Subspace dimension share, participation ratio and class overlap per layer and degree.

    ``geometry`` is :func:`memnotebooks.layer_geometry.geometry_table`'s output for several runs
    (one row per run, layer and class); lines are means over classes and seeds, bands one
    standard deviation over them. Panels: ``k / min(n_c, d)`` (the dimension as a share of the
    most it can be, the rank of the class's points), the participation ratio, and the first
    principal angle, with the same angle for random subspaces of the same ``k`` and ``d`` dashed.
    """
    measures = {
        "k_over_cap": "k / min(n_c, d)",
        "participation_ratio": "participation ratio",
        "first_principal_angle": "first principal angle (°)",
    }
    table = _in_layer_order(geometry)
    fig, axes = plt.subplots(len(measures), 1, figsize=(6.5, 7.5), layout="constrained", sharex=True)
    for ax, (column, label) in zip(axes, measures.items()):
        sns.lineplot(
            table, x="layer", y=column, hue="corruption_degree", marker="o",
            palette="flare", ax=ax, legend=ax is axes[-1], sort=False, errorbar=SPREAD,
        )
        ax.set(ylabel=label)
    sns.lineplot(
        table, x="layer", y="random_first_angle", hue="corruption_degree", palette="flare",
        ax=axes[-1], legend=False, sort=False, errorbar=None, linestyle="--",
    )
    axes[0].set_ylim(0, 1.05)
    axes[-1].set_ylim(0, 90)
    handles, labels = axes[-1].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="grey", linestyle="--"))
    labels.append("random subspaces, same k and d")
    axes[-1].legend(handles, labels, title="p", loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4)
    return fig


def decoding_by_layer(evaluation: pd.DataFrame, network: pd.DataFrame, split: str = "test", column: str = "test_accuracy"):
    """MASC test accuracy per layer, with corrupted and true subspaces, against the model's own.

    ``evaluation`` is :func:`memnotebooks.decoding.layerwise_evaluation`'s output (MASC rows)
    for several runs, scored on ``split``; ``network`` a table with ``corruption_degree`` and the
    network's accuracy in ``column`` (:func:`memnotebooks.runs.summary_table`'s, or the
    ``network, final`` rows of :func:`memnotebooks.baselines.baseline_scores` with
    ``column="accuracy"``, on the holdout). One panel per corruption degree; the dashed line is
    the network's accuracy (mean over seeds).
    """
    test = evaluation[(evaluation.probe == "masc") & (evaluation.split == split) & (evaluation.target == "true")]
    test = _in_layer_order(test).assign(subspaces=lambda t: "MASC, " + t.fit_labels + " labels")
    degrees = sorted(test.corruption_degree.unique())
    grid = sns.relplot(
        test, x="layer", y="accuracy", hue="subspaces", col="corruption_degree", col_order=degrees,
        kind="line", marker="o", height=2.5, aspect=1.1, col_wrap=min(3, len(degrees)), errorbar=SPREAD,
        hue_order=["MASC, corrupted labels", "MASC, true labels"], facet_kws={"sharex": False}, sort=False,
    )
    model_accuracy = network.groupby("corruption_degree")[column].mean()
    for degree, ax in zip(degrees, grid.axes.flat):
        ax.axhline(model_accuracy[degree], color="k", ls="--", lw=1, label="the network itself")
    grid.legend.remove()  # one legend, in the first panel, also naming the dashed line
    grid.axes.flat[0].legend(loc="lower left", fontsize="small")
    grid.set_titles("p = {col_name}")
    grid.set(ylim=(0, 1.02), ylabel="test accuracy" + (" (holdout)" if split == "test_holdout" else ""))
    return grid.figure


def probe_comparison(evaluation: pd.DataFrame, ax=None, split: str = "test"):
    """Accuracy on ``split`` per layer of every probe in ``evaluation`` (one run's, or averaged
    over seeds)."""
    ax = _axes(ax, (7, 3.8))
    test = _in_layer_order(evaluation[(evaluation.split == split) & (evaluation.target == "true")]).assign(probe=lambda t: t.probe.map(PROBE_NAMES))
    style = "fit_labels" if test.fit_labels.nunique() > 1 else None
    sns.lineplot(test, x="layer", y="accuracy", hue="probe", style=style, marker="o", ax=ax, sort=False, errorbar=SPREAD)
    ax.set(ylabel="test accuracy" + (" (holdout)" if split == "test_holdout" else ""), ylim=(0, 1.02))
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize="small", title="probe")
    return ax


def probes_by_layer(evaluation: pd.DataFrame, split: str = "test_holdout"):
    """Accuracy on ``split`` per layer of each probe in ``evaluation``, one panel per corruption
    degree; mean and spread over seeds. ``evaluation`` is
    :func:`memnotebooks.decoding.layerwise_evaluation` output of several runs."""
    shown = _in_layer_order(evaluation[(evaluation.split == split) & (evaluation.target == "true")]).assign(probe=lambda t: t.probe.map(PROBE_NAMES))
    shown = shown.assign(probe=shown.probe + ", " + shown.fit_labels + " labels") if shown.fit_labels.nunique() > 1 else shown
    grid = sns.relplot(
        shown, x="layer", y="accuracy", hue="probe", style="probe", col="corruption_degree", kind="line", markers=True, dashes=False,
        errorbar=SPREAD, height=2.8, aspect=1.2, facet_kws={"sharex": False}, sort=False,
    )
    grid.set_titles("p = {col_name}")
    grid.set(ylim=(0, 1.02), ylabel="accuracy" + (" (holdout)" if split == "test_holdout" else ""))
    sns.move_legend(grid, "upper left", bbox_to_anchor=(1.0, 0.9), title=None, frameon=False)
    return grid.figure


def subspace_angles(angles: pd.DataFrame, ax=None):
    """Histograms of MASC angles (degrees), one per ``subspace`` (e.g. the point's true class
    and the nearest other class), each normalized to its own area.

    Parameters
    ----------
    angles : DataFrame
        Columns ``angle`` (degrees, in [0, 90]) and ``subspace``, one row per point and subspace.
    """
    ax = _axes(ax, (5, 3.4))
    top = min(90.0, float(angles.angle.max()) + 5)  # the angles seldom reach 90 degrees: spend the axis where they are
    sns.histplot(angles, x="angle", hue="subspace", bins=30, binrange=(0, top), stat="density", common_norm=False, element="step", ax=ax)
    ax.set(xlabel="angle to the subspace (degrees)", xlim=(0, top))
    return ax


SPLIT_NAMES = {
    ("test_validation", "true"): "test, validation part",
    ("test_holdout", "true"): "test, holdout part",
    ("train_clean", "true"): "training, clean",
    ("train_corrupted", "true"): "training, corrupted (true labels)",
    ("train_corrupted", "given"): "training, corrupted (given labels)",
}
"""Bar names of the (split, target) sets :func:`layer_decoding` draws."""


def layer_decoding(evaluation: pd.DataFrame, angles: pd.DataFrame):
    """One layer decoded: the probe's accuracy on each set (left) and MASC's angles on the
    holdout part (right, :func:`subspace_angles`); returns the Figure.

    Parameters
    ----------
    evaluation : DataFrame
        :func:`memnotebooks.decoding.layerwise_evaluation` of one layer and one probe.
    angles : DataFrame
        :func:`memnotebooks.decoding.test_angles` of the same layer.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained", width_ratios=(1, 1.1))
    bars = evaluation.assign(set=[SPLIT_NAMES.get(k) for k in zip(evaluation.split, evaluation.target)]).dropna(subset=["set"])
    bars = bars.set_index("set").reindex([n for n in SPLIT_NAMES.values() if n in set(bars.set)]).reset_index()
    sns.barplot(bars, y="set", x="accuracy", color="C0", ax=left, errorbar=None)
    left.bar_label(left.containers[0], fmt="%.3f", padding=2, fontsize="small")
    left.set(xlim=(0, 1.15), ylabel=None, xlabel="accuracy")
    subspace_angles(angles, ax=right)
    return fig


def layer_at_epoch(evaluation: pd.DataFrame, network_accuracy: float, ax=None, split: str = "test_holdout"):
    """Accuracy on ``split`` of each probe at every layer of one network, with the network's own
    accuracy as a dashed line: the layer profile at one checkpoint.

    Parameters
    ----------
    evaluation : DataFrame
        :func:`memnotebooks.decoding.layerwise_evaluation` of one run at one epoch.
    network_accuracy : float
        The network's accuracy on ``split`` at that epoch.
    """
    ax = probe_comparison(evaluation, ax=ax, split=split)
    ax.axhline(network_accuracy, color="0.3", linestyle="--", linewidth=1, label="network")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", title="probe")
    return ax


def baselines(scores: pd.DataFrame, baselines=None, ax=None):
    """Accuracy of each baseline against the corruption degree, mean and spread over seeds.

    ``scores`` is :func:`memnotebooks.baselines.baseline_scores`' output; ``baselines`` picks
    and orders the lines (default all).
    """
    ax = _axes(ax, (7.5, 4.2))
    order = list(baselines or scores.baseline.unique())
    sns.lineplot(
        scores[scores.baseline.isin(order)], x="corruption_degree", y="accuracy", hue="baseline", hue_order=order,
        style="baseline", style_order=order, markers=True, dashes=False, errorbar=SPREAD, err_style="bars", ax=ax,
    )
    ax.set(xlabel="corruption degree p", ylabel="test accuracy (holdout)", ylim=(0, 1.02), xticks=sorted(scores.corruption_degree.unique()))
    sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, fontsize="small", title=None, frameon=False)
    return ax


SINGLE_DIRECTION = "single direction"
"""The :func:`memnotebooks.decoding.threshold_scores` setting of one direction per class."""


def threshold_sweep(scores: pd.DataFrame):
    """MASC's best-hidden-layer accuracy (validated) against the variance threshold t, per degree.

    ``scores`` is :func:`memnotebooks.decoding.threshold_scores`' output; one panel per set of
    fitting labels. Lines join the thresholds; one direction per class, the limit t → 0, is a
    point of its own at t = 0, not joined to them (it is not a threshold beyond the largest).
    Points are means over seeds, bars one standard deviation.
    """
    validated = scores[(scores.selection == "validated") & (scores.subspaces != "chosen on validation")]
    validated = validated.assign(p=validated.corruption_degree.map("{:g}".format))
    degrees = [f"{d:g}" for d in sorted(validated.corruption_degree.unique())]
    colours = dict(zip(degrees, sns.color_palette("flare", len(degrees))))
    single = validated.subspaces == SINGLE_DIRECTION
    sweep = validated[~single].assign(t=lambda t: t.subspaces.astype(float))
    grid = sns.relplot(
        sweep, x="t", y="accuracy", hue="p", hue_order=degrees, palette=colours, col="fit_labels", col_order=["corrupted", "true"],
        kind="line", marker="o", errorbar=SPREAD, err_style="bars", height=3.2, aspect=1.1,
    )
    thresholds = sorted(sweep.t.unique())
    for ax, labels in zip(grid.axes.flat, ["corrupted", "true"]):
        stats = validated[single & (validated.fit_labels == labels)].groupby("p").accuracy.agg(["mean", "std"])
        for degree, row in stats.iterrows():
            ax.errorbar(0, row["mean"], yerr=0 if pd.isna(row["std"]) else row["std"], fmt="D", color=colours[degree], capsize=3)
        ticks = ([0.0] if len(stats) else []) + thresholds
        # A threshold close to the one before it (0.9, 0.99) has its label one line lower, so they do not overlap.
        names, lowered = [], False
        for i, t in enumerate(thresholds):
            lowered = bool(i) and t - thresholds[i - 1] < 0.15 and not lowered
            names.append(("\n" if lowered else "") + f"{t:g}")
        ax.set_xticks(ticks, (["single\ndirection\n(t → 0)"] if len(stats) else []) + names, fontsize="small")
        ax.set_xlim(-0.08, 1.05)
    grid.set_titles("subspaces from {col_name} labels")
    grid.set(ylim=(0, 1.02), xlabel="variance threshold t", ylabel="test accuracy (holdout)")
    grid.legend.set_title("p")
    return grid.figure


RELABEL_STATISTICS = {
    "wrong labels\nfixed or dropped": ("wrong_fixed", "wrong_dropped"),
    "correct labels\nbroken or dropped": ("correct_broken", "correct_dropped"),
    "labels fine-tuned on\nthat are true": ("label_accuracy",),
}
"""The panels of :func:`relabel_labels` and the :data:`memnotebooks.relabel.LABEL_STATISTICS`
each one adds up."""


def relabel_accuracy(table: pd.DataFrame, methods=None, ax=None):
    """Holdout accuracy after each relabelling method, a dot per corruption degree (mean over
    seeds, bars one standard deviation), the memorized model's first; methods in words.

    ``table`` is :func:`memnotebooks.relabel.relabel_grid`'s output (or several, stacked);
    ``methods`` picks and orders the rows by method code (default all).
    """
    tidy = relabel_scores(table)
    if methods is not None:
        tidy = tidy[(tidy.baseline == BEFORE) | tidy.method.isin(list(methods))]
        tidy = tidy.assign(order=tidy.method.map({m: i for i, m in enumerate(methods)}).fillna(-1)).sort_values("order", kind="stable")
    order = list(tidy.baseline.unique())
    ax = _axes(ax, (7.5, 0.45 * len(order) + 1.2))
    sns.pointplot(
        tidy, x="accuracy", y="baseline", order=order, hue="corruption_degree", palette="flare", dodge=0.4,
        linestyle="none", markers="o", errorbar=SPREAD, capsize=0.15, err_kws={"linewidth": 1.2}, ax=ax,
    )
    ax.set(xlabel="test accuracy (holdout 80 %)", ylabel="", xlim=(0, 1.02))
    ax.legend(title="p", loc="lower left", fontsize="small", frameon=True)
    return ax


def relabel_labels(table: pd.DataFrame, methods=None):
    """What each method does to the training labels, per degree: the panels of
    :data:`RELABEL_STATISTICS`, bars the mean over seeds, error bars their spread; methods in
    words (:data:`memnotebooks.relabel.METHOD_NAMES`)."""
    order = list(methods or table.method.unique())
    shown = table[table.method.isin(order)].drop_duplicates(["dataset", "model", "corruption_degree", "seed", "method"])
    shown = shown.assign(method=shown.method.map(lambda m: METHOD_NAMES.get(m, m)))
    long = pd.concat(
        [shown.assign(statistic=name, share=shown[list(columns)].sum(axis=1)) for name, columns in RELABEL_STATISTICS.items()],
        ignore_index=True,
    )
    grid = sns.catplot(
        long, x="share", y="method", order=[METHOD_NAMES.get(m, m) for m in order], hue="corruption_degree", col="statistic",
        col_order=list(RELABEL_STATISTICS), kind="bar", palette="flare", errorbar=SPREAD, height=3.8, aspect=0.8, sharex=True,
    )
    grid.set_titles("{col_name}", size="small")
    grid.set(xlim=(0, 1.02), xlabel="share", ylabel="")
    grid.legend.set_title("p")
    return grid.figure


def paper_comparison(comparison: pd.DataFrame, selection: str = "test-selected", labels=None):
    """Ours against the paper's, per model and dataset (one panel each): the network's test
    accuracy and MASC's at the best layer with corrupted and true subspaces across degrees, in %;
    ours filled (with one-std error bars over seeds where there are several), the paper's hollow
    and dashed, in the same colour.

    ``comparison`` is :func:`memnotebooks.report.comparison`'s table; ``selection`` says how
    MASC's layer was chosen (``"test-selected"``, the paper's, or ``"validated"``); ``labels``
    maps measures to legend names and orders them (e.g. :data:`memnotebooks.report.MEASURES`;
    default the measures as named in the table).
    """
    labels = dict(labels or {measure: measure for measure in comparison.measure.unique()})
    shown = comparison[comparison.selection.isin(["final", selection])]
    pairs = list(shown.groupby(["model", "dataset"]).groups)
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.5 * len(pairs), 4.4), squeeze=False, sharey=True, layout="constrained")
    colours = dict(zip(labels, sns.color_palette(n_colors=len(labels))))
    for ax, (model, dataset) in zip(axes[0], pairs):
        pair = shown[(shown.model == model) & (shown.dataset == dataset)].sort_values("corruption_degree")
        handles = []  # ours and the paper's, measure by measure: a legend column per measure
        for measure, label in labels.items():
            rows = pair[pair.measure == measure]
            spread = 100 * rows["std"] if rows["std"].notna().any() else None
            handles.append(ax.errorbar(rows.corruption_degree, 100 * rows["mean"], yerr=spread, color=colours[measure], marker="o", capsize=3, label=f"{label}: ours"))
            handles += ax.plot(rows.corruption_degree, 100 * rows.paper, color=colours[measure], marker="o", markersize=9, markerfacecolor="none", linestyle="--", label=f"{label}: paper")
        seeds = "/".join(str(n) for n in sorted(pair.seeds.unique()))
        ax.set(title=f"{model}, {dataset} ({seeds} seed{'s' if seeds != '1' else ''})", xlabel="corruption degree p", xticks=sorted(pair.corruption_degree.unique()), ylim=(0, 100))
    axes[0, 0].set_ylabel("test accuracy (%)")
    fig.legend(handles=handles, loc="outside lower center", ncol=len(labels), fontsize="small", frameon=False)
    return fig


def paper_differences(comparison: pd.DataFrame, labels=None, tolerance: float = 3.0, ax=None):
    """Ours minus the paper's, in percentage points (each rounded to 0.1 first), per degree and
    measure; MASC's layer chosen on the test set (filled) and on the validation part (hollow).
    The band is ``± tolerance`` points.

    ``comparison`` is :func:`memnotebooks.report.comparison`'s table of one model and dataset;
    ``labels`` as in :func:`paper_comparison`.
    """
    labels = dict(labels or {measure: measure for measure in comparison.measure.unique()})
    ax = _axes(ax, (7.0, 4.2))
    colours = dict(zip(labels, sns.color_palette(n_colors=len(labels))))
    table = comparison.assign(points=(100 * comparison["mean"]).round(1) - (100 * comparison.paper).round(1))
    ax.axhspan(-tolerance, tolerance, color="0.9", zorder=0, label=f"within ±{tolerance:g} points")
    ax.axhline(0, color="0.5", linewidth=0.8)
    offsets = dict(zip(labels, (-0.02, 0.0, 0.02)))
    for measure, label in labels.items():
        for selection, filled in (("final", True), ("test-selected", True), ("validated", False)):
            rows = table[(table.measure == measure) & (table.selection == selection)].sort_values("corruption_degree")
            if len(rows):
                name = label if selection == "final" else f"{label}, layer {selection}"
                ax.plot(rows.corruption_degree + offsets.get(measure, 0), rows.points, marker="o", linestyle="none", color=colours[measure], markersize=7, markerfacecolor=colours[measure] if filled else "none", label=name)
    ax.set(xlabel="corruption degree p", ylabel="ours − paper (points)", xticks=sorted(table.corruption_degree.unique()))
    ax.figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize="small", frameon=False)
    return ax


def paper_differences_by_pair(comparison: pd.DataFrame, labels=None, tolerance: float = 3.0, title: str = "{model}, {dataset}") -> list:
    """:func:`paper_differences` of every model and dataset of ``comparison``, one figure each,
    titled ``title`` (formatted with ``model`` and ``dataset``); returns their Axes."""
    axes = []
    for (model, dataset), pair in comparison.groupby(["model", "dataset"]):
        axes.append(paper_differences(pair, labels=labels, tolerance=tolerance))
        axes[-1].set_title(title.format(model=model, dataset=dataset))
    return axes


SUBSET_COLOURS = {"clean": "tab:blue", "corrupted": "tab:red"}
"""Colours of the clean and the corrupted training examples."""


def learning_epochs(table: pd.DataFrame):
    """Share of each subset's examples learned for good by each epoch (an ECDF of the epoch of
    learning), clean against corrupted, one panel per corruption degree; all seeds pooled.

    ``table`` is :func:`memnotebooks.dynamics.learning_table`'s output; examples never fitted
    (epoch -1) keep the curve below 1.
    """
    degrees = sorted(table.corruption_degree.unique())
    fig, axes = plt.subplots(1, len(degrees), figsize=(3.6 * len(degrees) + 1.6, 3.2), squeeze=False, sharey=True, layout="constrained")
    for ax, degree in zip(axes[0], degrees):
        part = table[table.corruption_degree == degree]
        for subset, rows in part.groupby("examples"):
            epochs = rows.learned_epoch.where(rows.learned_epoch >= 0, float("inf")).sort_values()
            share = pd.Series(range(1, len(epochs) + 1), index=epochs.values) / len(epochs)
            ax.step(share.index, share.values, where="post", color=SUBSET_COLOURS[subset], label=f"{subset} ({len(rows) // part.seed.nunique()} per run)")
        ax.set(title=f"p = {degree}", xlabel="epoch", ylim=(0, 1.02))
        ax.legend(fontsize="small", frameon=False, loc="lower right")
    axes[0, 0].set_ylabel("share learned for good")
    return fig


GRADIENT_MEASURES = {
    "mean_norm": "‖∇ loss‖ of one example (mean)",
    "step_share": "share of the full-batch step",
    "coherence_ratio": "coherence ÷ its null, all classes",
    "within_class_ratio": "coherence ÷ its null, within a class",
}
"""Axis names of :func:`memnotebooks.dynamics.gradient_table`'s measures (the ratios are
``coherence / coherence_null`` and ``within_class_coherence / within_class_null``)."""


def _epoch_axis(ax, epochs) -> None:
    """Epochs on a symmetric-log axis (linear up to 1, so epoch 0 shows) from 0, ticked at a
    few of ``epochs`` (the checkpoints), with plain numbers, and labelled as such."""
    ax.set_xscale("symlog", linthresh=1)
    ticks = [e for e in (0, 1, 3, 8, 20, 50, 130, 300) if e in set(epochs)]  # about x2.5 apart on the log part
    ax.set_xticks(ticks, [str(e) for e in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlim(left=-0.1)
    ax.set_xlabel("epoch (log scale beyond 1)")


def gradients(table: pd.DataFrame, measures=tuple(GRADIENT_MEASURES)):
    """Each gradient measure at each checkpoint (one panel each, two a row), clean against
    corrupted (line style: corruption degree ``p``); mean and spread over seeds, on a
    symmetric-log epoch axis. The coherences are shown over their nulls (what gradients of the
    same norms in unrelated directions give), so 1 (the dotted line) is "unrelated".

    ``table`` is :func:`memnotebooks.dynamics.gradient_table`'s output, stacked over runs.
    """
    measures = list(measures)
    table = table.rename(columns={"corruption_degree": "p"}).assign(
        coherence_ratio=lambda t: t.coherence / t.coherence_null, within_class_ratio=lambda t: t.within_class_coherence / t.within_class_null
    )
    n_rows = (len(measures) + 1) // 2
    fig, axes = plt.subplots(n_rows, min(2, len(measures)), figsize=(9, 3.0 * n_rows), squeeze=False, layout="constrained")
    for ax, measure in zip(axes.flat, measures):
        sns.lineplot(table, x="epoch", y=measure, hue="examples", palette=SUBSET_COLOURS, style="p", markers=True, errorbar=SPREAD, ax=ax, legend=ax is axes.flat[0])
        ax.set(ylabel=GRADIENT_MEASURES[measure])
        _epoch_axis(ax, table.epoch.unique())
        if measure.endswith("_ratio"):  # what examples with unrelated gradients would give
            ax.axhline(1, color="grey", linestyle=":", linewidth=1)
    for ax in axes.flat[len(measures):]:
        ax.set_visible(False)
    sns.move_legend(axes.flat[0], "upper left", bbox_to_anchor=(1.0, 1), fontsize="small", frameon=False)
    return fig


def setting_curves(history: pd.DataFrame, column: str = "train_accuracy", setting: str = "setting", ax=None):
    """One accuracy column over epochs, a line per setting (e.g. real data against kinds of
    noise, :func:`memnotebooks.dynamics.settings_history`); mean and spread over seeds."""
    ax = _axes(ax, (6.5, 3.4))
    sns.lineplot(history, x="epoch", y=column, hue=setting, errorbar=SPREAD, ax=ax)
    ax.set(xlabel="epoch", ylabel=ACCURACY_LABELS.get(column, column), ylim=(0, 1.02))
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), fontsize="small", frameon=False, title=None)
    return ax


MANIFOLD_MEASURES = ("capacity", "radius", "dimension")


def manifold_layers(table: pd.DataFrame, hue: str = "epoch"):
    """Mean-field capacity, radius and dimension (rows) of each manifold group (columns) by
    layer, one line per value of ``hue`` (the epoch by default); mean over the classes (and
    seeds), with a band of one standard deviation over them.

    ``table`` is :func:`memnotebooks.layer_manifolds.manifold_table`'s output.
    """
    names = table.drop_duplicates("layer_index").sort_values("layer_index").layer.tolist()
    long = table.melt(id_vars=["layer_index", "group", hue], value_vars=list(MANIFOLD_MEASURES), var_name="measure")
    order = sorted(long[hue].unique())
    long[hue] = long[hue].astype(str)
    # One clearly distinct colour per epoch, early dark to late light: the viridis map from its
    # dark end to yellow, evenly spaced (seaborn's own sampling leaves two near-identical greens).
    colours = [plt.get_cmap("viridis")(0.92 * i / max(len(order) - 1, 1)) for i in range(len(order))]
    grid = sns.relplot(
        long, x="layer_index", y="value", hue=hue, hue_order=[str(v) for v in order], row="measure", col="group", kind="line", marker="o",
        errorbar=SPREAD, height=2.0, aspect=1.25, palette=colours, facet_kws={"sharey": "row"},
    )
    for ax, group in zip(grid.axes[0], grid.col_names):
        ax.set_title(group)
    for ax in grid.axes[1:].flat:
        ax.set_title("")
    grid.set(xticks=range(len(names)), xlabel="", ylabel="")
    for ax in grid.axes[-1]:  # rotated, so that neighbouring panels' names do not run together
        ax.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor", fontsize="small")
    for ax, measure in zip(grid.axes[:, 0], MANIFOLD_MEASURES):
        ax.set_ylabel(measure)
    return grid.figure


def manifold_layers_by_degree(table: pd.DataFrame, title: str = "p = {corruption_degree}", hue: str = "epoch") -> list:
    """:func:`manifold_layers` of each corruption degree of ``table``, one figure each, titled
    ``title`` (formatted with ``corruption_degree``); returns the Figures."""
    figures = []
    for degree, part in table.groupby("corruption_degree"):
        figures.append(manifold_layers(part, hue=hue))
        figures[-1].suptitle(title.format(corruption_degree=degree), y=1.02)
    return figures


def regularization(history: pd.DataFrame, setting: str = "setting"):
    """Per regularization setting (hue), the corrupted examples' training accuracy on their given
    labels (left) and the test accuracy (right) over epochs; mean and spread over seeds.

    ``history`` is :func:`memnotebooks.runs.history_table`'s output with a ``setting`` column.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True, layout="constrained")
    for ax, column, title in zip(axes, ["corrupted_accuracy_given", "test_accuracy"], ["corrupted examples, given labels (memorized)", "test set (generalized)"]):
        sns.lineplot(history, x="epoch", y=column, hue=setting, errorbar=SPREAD, ax=ax, legend=ax is axes[-1])
        ax.set(title=title, ylabel="accuracy", ylim=(0, 1.02))
    sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), fontsize="small", frameon=False, title=None)
    return fig


def decoding_over_epochs(table: pd.DataFrame, selection: str = "validated"):
    """Test accuracy of the network and of MASC at its best layer at each checkpoint, one panel
    per corruption degree; mean and spread over seeds.

    ``table`` is :func:`memnotebooks.dynamics.decoding_over_epochs`'s output; ``selection`` picks
    how MASC's layer is chosen (and the network's matching split).
    """
    shown = table[table.selection == selection]
    grid = sns.relplot(
        shown, x="epoch", y="accuracy", hue="decoder", col="corruption_degree", kind="line", marker="o",
        errorbar=SPREAD, height=3.0, aspect=1.2, facet_kws={"sharex": False},
    )
    grid.set_titles("p = {col_name}")
    grid.set(ylim=(0, 1.02), ylabel="holdout accuracy" if selection == "validated" else "test accuracy")
    for ax in grid.axes.flat:
        _epoch_axis(ax, shown.epoch.unique())
    sns.move_legend(grid, "upper left", bbox_to_anchor=(1.0, 0.9), title=None, frameon=False)
    return grid.figure


def editing_over_epochs(table: pd.DataFrame):
    """Holdout accuracy of the network edited with each readout, at each checkpoint, beside the
    unedited network: one panel per corruption degree, mean and spread over seeds.

    ``table`` is :func:`memnotebooks.editing.editing_table` (or ``editing_grid``) output.
    """
    shown = table[table.split == "test_holdout"].assign(readout=lambda t: t.readout.map(READOUT_NAMES))
    order = [READOUT_NAMES[UNEDITED], *(READOUT_NAMES[r] for r in dict.fromkeys(table.readout) if r != UNEDITED)]
    grid = sns.relplot(
        shown, x="epoch", y="accuracy", hue="readout", hue_order=order, style="readout", style_order=order, col="corruption_degree",
        kind="line", markers=True, dashes=False, errorbar=SPREAD, height=3.0, aspect=1.2, facet_kws={"sharex": False},
    )
    grid.set_titles("p = {col_name}")
    grid.set(ylim=(0, 1.02), ylabel="holdout accuracy")
    for ax in grid.axes.flat:
        _epoch_axis(ax, shown.epoch.unique())
    sns.move_legend(grid, "upper center", bbox_to_anchor=(0.45, 0.0), ncol=2, title=None, frameon=False)
    return grid.figure


def edit_training(table: pd.DataFrame):
    """Training on after an edit: the holdout accuracy (top) and the share of corrupted labels
    fitted (bottom) on the run's own epochs, one colour per edit epoch, the edited continuation
    solid and the unedited one dashed; one column per corruption degree, mean and spread over seeds.

    ``table`` is :func:`memnotebooks.editing.edit_during_training` (or ``edit_training_grid``) output.
    """
    measures = {"test_holdout_accuracy": "holdout accuracy", "corrupted_accuracy_given": "corrupted labels fitted"}
    readout = next(r for r in dict.fromkeys(table.readout) if r != UNEDITED)
    long = table.melt(id_vars=["corruption_degree", "seed", "readout", "edit_epoch", "run_epoch"], value_vars=list(measures), var_name="measure", value_name="accuracy")
    long = long.assign(measure=long.measure.map(measures), network=long.readout.map({readout: f"edited ({READOUT_NAMES[readout]})", UNEDITED: "unedited"}),
                       edit=long.edit_epoch.map("edited at epoch {}".format))
    grid = sns.relplot(
        long, x="run_epoch", y="accuracy", hue="edit", style="network", style_order=[f"edited ({READOUT_NAMES[readout]})", "unedited"],
        row="measure", col="corruption_degree", kind="line", errorbar=SPREAD, height=2.6, aspect=1.5, facet_kws={"sharex": "col"},
    )
    grid.set_titles("p = {col_name}: {row_name}")
    grid.set(ylim=(0, 1.02), ylabel="accuracy")
    grid.set_xlabels("epoch of the run")
    sns.move_legend(grid, "upper center", bbox_to_anchor=(0.45, 0.0), ncol=3, title=None, frameon=False)
    return grid.figure
