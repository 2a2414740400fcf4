"""Probe-layer outputs of a model, through torchvision's feature extraction.

:func:`extract_activations` traces the model once with
``torchvision.models.feature_extraction.create_feature_extractor``, asking for the nodes behind
the model's probe layers (see :mod:`memnotebooks.models`), then runs the inputs through it in
batches. Nothing is stored inside the model's ``forward``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from .devices import resolve_device
from .models import evaluation_mode

__all__ = ["check_layers", "embed_2d", "extract_activations", "layer_table"]


def check_layers(model: nn.Module, layers) -> list[str]:
    """Validate probe-layer names against the model; ``None`` means all, in forward order."""
    available = list(model.probe_layers)
    if layers is None:
        return available
    layers = [layers] if isinstance(layers, str) else list(layers)
    unknown = [name for name in layers if name not in model.probe_layers]
    if unknown:
        raise ValueError(
            f"Unknown layer(s) {', '.join(map(repr, unknown))} for {type(model).__name__}; "
            f"choose from: {', '.join(available)}."
        )
    return layers


@torch.no_grad()
def extract_activations(
    model: nn.Module,
    x: torch.Tensor,
    layers=None,
    *,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    output_device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Outputs of the probe layers for inputs ``x``, flattened.

    Parameters
    ----------
    model : nn.Module
        A model from :mod:`memnotebooks.models` (it has ``probe_layers``); evaluated in eval mode.
    x : Tensor of shape (n_samples, channels, height, width)
    layers : str or list of str, optional
        Probe layer names; default all of the model's, in forward order.
    batch_size : int
        Inputs per forward pass.
    device : str or torch.device, optional
        Where to run; default the model's device (``"auto"`` is accepted, see
        :func:`memnotebooks.devices.resolve_device`).
    output_device : str or torch.device
        Where the returned tensors live.

    The model is left as it was found: on its device, each submodule in its own mode.

    Returns
    -------
    dict of str to Tensor of shape (n_samples, n_features), float32
        One entry per layer, in the order asked for.
    """
    layers = check_layers(model, layers)
    home = next(model.parameters()).device
    device = home if device is None else resolve_device(device)
    chunks = {name: [] for name in layers}
    try:
        with evaluation_mode(model.to(device)):
            extractor = create_feature_extractor(model, return_nodes={model.probe_layers[name]: name for name in layers})
            for start in range(0, len(x), batch_size):
                outputs = extractor(x[start : start + batch_size].to(device))
                for name in layers:
                    chunks[name].append(outputs[name].flatten(1).to(output_device, torch.float32))
    finally:
        model.to(home)
    return {name: torch.cat(chunks[name]) for name in layers}


def layer_table(model: nn.Module, input_shape) -> pd.DataFrame:
    """The model's probe layers in order: name, graph node, output shape and width ``d``."""
    layers = check_layers(model, None)
    device = next(model.parameters()).device
    with torch.no_grad(), evaluation_mode(model):
        extractor = create_feature_extractor(model, return_nodes={model.probe_layers[n]: n for n in layers})
        outputs = extractor(torch.zeros(1, *input_shape, device=device))
    return pd.DataFrame(
        {
            "layer": layers,
            "node": [model.probe_layers[n] for n in layers],
            "shape": [tuple(outputs[n].shape[1:]) for n in layers],
            "n_features": [outputs[n][0].numel() for n in layers],
        }
    )


def embed_2d(activations: dict[str, torch.Tensor], labels, max_points: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Project each layer's activations onto its first two principal components.

    Parameters
    ----------
    activations : dict of str to Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
        Stored beside the coordinates (e.g. the true labels, for colouring).
    max_points : int, optional
        Embed a random subset of this many points (the same for every layer).

    Returns
    -------
    DataFrame
        Columns ``layer``, ``component_1``, ``component_2``, ``label``, ``index``.
    """
    labels = np.asarray(labels)
    index = np.arange(len(labels))
    if max_points is not None and max_points < len(index):
        index = np.sort(np.random.default_rng(seed).choice(index, size=max_points, replace=False))
    frames = []
    for layer, values in activations.items():
        points = PCA(n_components=2, random_state=seed).fit_transform(values[index].numpy())
        frames.append(
            pd.DataFrame(
                {"layer": layer, "component_1": points[:, 0], "component_2": points[:, 1], "label": labels[index], "index": index}
            )
        )
    return pd.concat(frames, ignore_index=True)
