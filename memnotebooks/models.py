"""The paper's architectures, each naming its probe layers.

Every model has a ``probe_layers`` mapping from the paper's layer names (``input``, ``fc1``,
``flatten``, ``layer3``, ...) to the node names that torchvision's feature extraction uses, in
forward order. Hidden fully connected layers are ``nn.Sequential(Linear, ReLU)`` blocks, so a node
such as ``fc1`` is the layer's output *after* its ReLU, as the paper probes it. ``input`` is the
graph's placeholder ``x``: the (flattened) input itself.

Build models by name with :func:`build_model`, which checks that the architecture can take the
dataset's input shape. :func:`last_linear_layer` finds the layer that computes a model's output
and :func:`edit_last_layer` returns a copy with other weights in it (weight editing, Ketha &
Ramaswamy 2026); :func:`rewind` resets the last layers to earlier weights.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torchvision.models.resnet import BasicBlock, ResNet

from .checks import integer, one_of, real

__all__ = ["MODELS", "ModelEntry", "MLP", "CNN", "AlexNet", "ResNet18", "build_model", "check_dropout", "check_width", "count_parameters", "edit_last_layer", "evaluation_mode", "last_linear_layer", "probe_layers", "rewind", "weight_layers"]


def _dense(in_features: int, out_features: int, dropout: float = 0.0) -> nn.Sequential:
    # Dropout after the ReLU, so a probe layer's output (identity in evaluation mode) is the
    # same module with or without it; none at rate 0 keeps the paper's state dict.
    layers = [nn.Linear(in_features, out_features), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, *([nn.Dropout(dropout)] if dropout else []))


def check_dropout(dropout) -> float:
    """``dropout`` as a float if it is a rate in [0, 1), else a ValueError naming it."""
    return real("dropout", dropout, 0, 1, high_open=True)


def check_width(width) -> float:
    """``width`` as a float if it is a positive multiplier of the hidden widths, else a
    ValueError naming it."""
    return real("width (a multiplier of the hidden layers' widths)", width, 0, low_open=True)


def _scaled(size: int, width: float) -> int:
    return max(1, round(size * width))


def _conv(in_channels: int, out_channels: int, **kwargs) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, **kwargs), nn.ReLU(inplace=True)]


def _flat_size(features: nn.Module, input_shape: tuple[int, ...], model: str) -> int:
    """Number of features after ``features`` for one input, or a clear error if it cannot run."""
    features.eval()  # a dry run must not update BatchNorm statistics
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"{model} cannot take inputs of shape {tuple(input_shape)}: {error}") from error
    finally:
        features.train()
    return math.prod(out.shape[1:])


class MLP(nn.Module):
    """Fully connected network: flatten -> 128 -> 512 -> 2048 -> 2048 -> classes, ReLU between.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 28, 28)``.
    num_classes : int
    hidden_sizes : tuple of int
        Widths of the hidden layers ``fc1``, ``fc2``, ...
    dropout : float in [0, 1)
        Dropout rate after every hidden layer (Arpit et al.'s regularizer); 0, the paper's, adds
        no module.
    width : float > 0
        Multiplier of every hidden width (rounded, at least 1), for width sweeps; 1 is the paper's.
    """

    def __init__(self, input_shape, num_classes: int, hidden_sizes=(128, 512, 2048, 2048), dropout: float = 0.0, width: float = 1.0):
        super().__init__()
        dropout, width = check_dropout(dropout), check_width(width)
        widths = [math.prod(input_shape), *(_scaled(size, width) for size in hidden_sizes)]
        self.flatten = nn.Flatten()
        self.hidden_names = [f"fc{i + 1}" for i in range(len(hidden_sizes))]
        for name, n_in, n_out in zip(self.hidden_names, widths[:-1], widths[1:]):
            self.add_module(name, _dense(n_in, n_out, dropout))
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.probe_layers = {"input": "x", **{name: name for name in self.hidden_names}}

    def forward(self, x):
        x = self.flatten(x)
        for name in self.hidden_names:
            x = getattr(self, name)(x)
        return self.classifier(x)


class CNN(nn.Module):
    """The paper's CNN: six 3x3 convolutions in three pooled stages, three dense layers of 250.

    Convolutions 16, 16, pool, 32, 32, pool, 64, 64, pool (padding 1, ReLU), flatten (576 for
    1x28x28 inputs, 1024 for 3x32x32, 64 for 1x8x8), dense 250, 250, 250 with ReLU, and a final
    linear layer without bias. ``dropout`` (a rate in [0, 1)) follows each dense layer; ``width``
    (> 0) multiplies every channel count and dense width (rounded, at least 1).
    """

    def __init__(self, input_shape, num_classes: int, dropout: float = 0.0, width: float = 1.0):
        super().__init__()
        dropout, width = check_dropout(dropout), check_width(width)
        channels, layers = input_shape[0], []
        for stage in (16, 32, 64):
            stage = _scaled(stage, width)
            layers += _conv(channels, stage, kernel_size=3, padding=1) + _conv(stage, stage, kernel_size=3, padding=1)
            layers.append(nn.MaxPool2d(2))
            channels = stage
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        flat = _flat_size(self.features, input_shape, "cnn")
        if flat == 0:
            raise ValueError(f"cnn needs images of at least 8x8 pixels, got input shape {tuple(input_shape)}.")
        dense = _scaled(250, width)
        self.fc1, self.fc2, self.fc3 = _dense(flat, dense, dropout), _dense(dense, dense, dropout), _dense(dense, dense, dropout)
        self.classifier = nn.Linear(dense, num_classes, bias=False)
        self.probe_layers = {"input": "x", "flatten": "flatten", "fc1": "fc1", "fc2": "fc2", "fc3": "fc3"}

    def forward(self, x):
        x = self.flatten(self.features(x))
        return self.classifier(self.fc3(self.fc2(self.fc1(x))))


class AlexNet(nn.Module):
    """AlexNet in the paper's two variants.

    ``variant="cifar"`` (32x32 inputs): 3x3 convolutions 64 (stride 2), 192, 384, 256, 256 with
    3x3/2 max-pools after the first, second and fifth, flatten 256. ``variant="imagenet"``
    (Tiny-ImageNet, 64x64): torchvision's feature stack (11x11/4 first convolution) and a 6x6
    adaptive average pool, flatten 256*6*6 = 9216. Both end in dense 4096, 4096 (ReLU) and a
    linear classifier; ``fc1`` is sized for the variant's flatten (the published code overwrote
    the Tiny-ImageNet classifier with the CIFAR one, whose 256 inputs cannot take 9216 features).
    """

    VARIANTS = ("cifar", "imagenet")

    def __init__(self, input_shape, num_classes: int, variant: str | None = None):
        super().__init__()
        if variant is None:
            variant = "imagenet" if min(input_shape[1:]) >= 63 else "cifar"
        if variant not in self.VARIANTS:
            raise ValueError(f"Unknown AlexNet variant {variant!r}; choose one of: {', '.join(self.VARIANTS)}.")
        self.variant = variant
        c = input_shape[0]
        pool = nn.MaxPool2d(kernel_size=3, stride=2)
        if variant == "cifar":
            first = _conv(c, 64, kernel_size=3, stride=2, padding=1) + [pool]
            second = _conv(64, 192, kernel_size=3, padding=1) + [pool]
            self.avgpool = nn.Identity()
        else:
            first = _conv(c, 64, kernel_size=11, stride=4, padding=2) + [pool]
            second = _conv(64, 192, kernel_size=5, padding=2) + [pool]
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        rest = (
            _conv(192, 384, kernel_size=3, padding=1)
            + _conv(384, 256, kernel_size=3, padding=1)
            + _conv(256, 256, kernel_size=3, padding=1)
            + [pool]
        )
        self.features = nn.Sequential(*first, *second, *rest)
        self.flatten = nn.Flatten()
        flat = _flat_size(nn.Sequential(self.features, self.avgpool), input_shape, f"alexnet ({variant})")
        self.fc1, self.fc2 = _dense(flat, 4096), _dense(4096, 4096)
        self.classifier = nn.Linear(4096, num_classes)
        self.probe_layers = {"flatten": "flatten", "fc1": "fc1", "fc2": "fc2"}

    def forward(self, x):
        x = self.flatten(self.avgpool(self.features(x)))
        return self.classifier(self.fc2(self.fc1(x)))


class ResNet18(ResNet):
    """torchvision's ResNet-18 with ``num_classes`` outputs and any number of input channels."""

    def __init__(self, input_shape, num_classes: int):
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        if input_shape[0] != 3:
            self.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
        _flat_size(nn.Sequential(*list(self.children())[:-1]), input_shape, "resnet18")
        names = ["maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]
        self.probe_layers = {name: name for name in names}


@dataclass(frozen=True)
class ModelEntry:
    """What the package knows of one architecture: one entry of :data:`MODELS`.

    Attributes
    ----------
    build : type
        The ``nn.Module`` class, called as ``build(input_shape, num_classes, **options)``.
    options : tuple of str
        The keyword options it takes (:func:`build_model` refuses others by name).
    paper_name : str
        Its name in the paper's table (:func:`memnotebooks.paper.paper_table`).
    paper_settings : dict
        ``optimizer``, ``learning_rate``, ``momentum`` and ``batch_size`` as the paper trains it
        (DESIGN §2); :func:`memnotebooks.paper.paper_settings` adjusts them per dataset.
    """

    build: type
    options: tuple[str, ...]
    paper_name: str
    paper_settings: dict = field(default_factory=dict)


MODELS = {
    "mlp": ModelEntry(MLP, ("hidden_sizes", "dropout", "width"), "MLP", {"optimizer": "sgd", "learning_rate": 1e-3, "momentum": 0.9, "batch_size": 32}),
    "cnn": ModelEntry(CNN, ("dropout", "width"), "CNN", {"optimizer": "adam", "learning_rate": 2e-4, "momentum": 0.0, "batch_size": 128}),
    # The paper gives no batch size for AlexNet and ResNet-18: 128.
    "alexnet": ModelEntry(AlexNet, ("variant",), "AlexNet", {"optimizer": "adam", "learning_rate": 1e-4, "momentum": 0.0, "batch_size": 128}),
    "resnet18": ModelEntry(ResNet18, (), "ResNet18", {"optimizer": "sgd", "learning_rate": 1e-3, "momentum": 0.9, "batch_size": 128}),
}
"""The architectures :func:`build_model` builds, by name; adding one is one entry here."""


def build_model(name: str, input_shape, num_classes: int, **kwargs) -> nn.Module:
    """Build a model by name for inputs of ``input_shape`` and ``num_classes`` classes.

    Parameters
    ----------
    name : {"mlp", "cnn", "alexnet", "resnet18"}
    input_shape : tuple of int
        ``(channels, height, width)`` of one input.
    num_classes : int
    **kwargs
        The model's options (:attr:`ModelEntry.options`: ``hidden_sizes``, ``dropout`` and
        ``width`` for the MLP, ``dropout`` and ``width`` for the CNN, ``variant`` for AlexNet).

    Raises
    ------
    ValueError
        For an unknown name or option, or an input shape the architecture cannot take.
    """
    entry = MODELS[one_of("model", name, MODELS)]
    for option in kwargs:
        if option not in entry.options:
            raise ValueError(f"Model {name!r} takes no option {option!r}; its options are: {', '.join(entry.options) or 'none'}.")
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape}.")
    return entry.build(input_shape, integer("num_classes", num_classes, low=2), **kwargs)


def count_parameters(model: nn.Module) -> int:
    """How many weights ``model`` learns: the elements of its parameters (buffers such as a batch
    norm's running statistics are not learned, and not counted).

    >>> count_parameters(nn.Linear(3, 2))  # a 2 x 3 weight and 2 biases
    8
    """
    return sum(p.numel() for p in model.parameters())


def probe_layers(model: nn.Module) -> list[str]:
    """The model's probe layer names, in forward order."""
    return list(model.probe_layers)


@contextlib.contextmanager
def evaluation_mode(model: nn.Module):
    """Put every submodule of ``model`` in evaluation mode, and give each its own mode back after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def weight_layers(model: nn.Module) -> list[str]:
    """The model's layers with weights, input to output: each convolution and linear layer, by
    its module name (a batch norm belongs to the convolution before it). These are the layers
    :func:`rewind` counts from the output."""
    return [name for name, module in model.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear))]


def rewind(model: nn.Module, state: dict, n_layers: int) -> nn.Module:
    """Reset the last ``n_layers`` weight layers of ``model`` to their values in ``state``.

    Stephenson et al. (2021) rewind the layers nearest the output of a memorizing network to an
    early epoch, keeping the rest, to locate memorization. ``model`` is changed in place and
    returned.

    Parameters
    ----------
    model : nn.Module
    state : dict
        A state dict of the same architecture (e.g. a run's checkpoint).
    n_layers : int
        How many of :func:`weight_layers`, counted from the output, to reset; 0 changes nothing.
        Batch norms after a reset convolution are reset with it (parameters and statistics).
    """
    layers = weight_layers(model)
    integer(f"n_layers (of the model's weight layers: {', '.join(layers)})", n_layers, low=0, high=len(layers))
    names = [name for name, _ in model.named_modules()]
    first = names.index(layers[-n_layers]) if n_layers else len(names)
    reset = set(names[first:])  # every module from the first reset layer on, in registration order
    keys = [key for key in model.state_dict() if key.rpartition(".")[0] in reset]
    model.load_state_dict({key: state[key] for key in keys}, strict=False)
    return model


def last_linear_layer(model: nn.Module) -> tuple[str, nn.Linear]:
    """The layer that computes the model's output, if it is an ``nn.Linear``: its name and module.

    The layer is found in the model's traced graph (``torch.fx``, as feature extraction traces
    it): the module whose output the model returns. For every model of :data:`MODELS` it is the
    classifier (``classifier``, ResNet-18's ``fc``), which maps the last hidden layer's outputs
    (the last of the model's probe layers) to one logit per class.

    Returns
    -------
    name : str
        Its module name, e.g. ``"classifier"``.
    layer : nn.Linear
        The module itself (not a copy).

    Raises
    ------
    ValueError
        Naming the model and what computes its output, when that is not an ``nn.Linear`` (a
        convolution, a function of the graph, ...) or the model cannot be traced.
    """
    model_name = type(model).__name__
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as error:  # fx raises many kinds of error on untraceable code
        raise ValueError(f"Cannot find the last layer of {model_name}: torch.fx cannot trace it ({error}).") from error
    output = next(node for node in graph.nodes if node.op == "output")
    last = output.args[0]
    if not isinstance(last, fx.Node) or last.op != "call_module":
        what = f"{last.op} {last.target}" if isinstance(last, fx.Node) else repr(last)
        raise ValueError(f"The last layer of {model_name} is not a module but {what}: it has no linear layer to edit.")
    layer = model.get_submodule(last.target)
    if not isinstance(layer, nn.Linear):
        raise ValueError(f"The last layer of {model_name} is {last.target!r}, a {type(layer).__name__} ({layer}), not an nn.Linear: it cannot hold a linear readout.")
    return last.target, layer


def edit_last_layer(model: nn.Module, weight, bias=None) -> nn.Module:
    """A copy of ``model`` whose last linear layer (:func:`last_linear_layer`) holds ``weight``
    and ``bias``; ``model`` itself is not changed.

    Parameters
    ----------
    model : nn.Module
    weight : array-like or Tensor of shape (n_classes, n_features)
        The layer's new weight: row ``c`` gives class ``c``'s logit ``w_c·h + b_c`` from the last
        hidden layer's output ``h`` (its ``out_features`` by ``in_features``).
    bias : array-like or Tensor of shape (n_classes,), optional
        The new bias. ``None``: zeros if the layer has a bias (as the published code does for the
        MLP), none if it has none (the CNN's). A bias given for a layer without one gives the
        copy's layer a bias (its state dict then has one more entry, ``<name>.bias``).

    Returns
    -------
    nn.Module
        The copy, on the model's device and in the model's mode, with the new values in the
        layer's dtype; its parameters are its own (training it leaves ``model`` alone).

    Raises
    ------
    ValueError
        When the last layer is not linear, or ``weight`` or ``bias`` has another shape than the
        layer's, or holds NaN or infinity.
    """
    name, layer = last_linear_layer(model)
    where = f"the last layer {name!r} of {type(model).__name__} ({layer.out_features} outputs, {layer.in_features} inputs)"
    weight = _as_values(weight, "weight", (layer.out_features, layer.in_features), where, layer.weight)
    if bias is not None:
        bias = _as_values(bias, "bias", (layer.out_features,), where, layer.weight)
    edited = copy.deepcopy(model)
    if bias is not None and layer.bias is None:
        with_bias = nn.Linear(layer.in_features, layer.out_features, bias=True, device=layer.weight.device, dtype=layer.weight.dtype)
        with_bias.train(layer.training)
        parent, _, child = name.rpartition(".")
        setattr(edited.get_submodule(parent), child, with_bias)
    target = edited.get_submodule(name)
    with torch.no_grad():
        target.weight.copy_(weight)
        if target.bias is not None:
            target.bias.copy_(torch.zeros_like(target.bias) if bias is None else bias)
    return edited


def _as_values(values, what: str, shape: tuple[int, ...], where: str, like: torch.Tensor) -> torch.Tensor:
    """``values`` as a tensor like ``like`` (device, dtype), checked to have ``shape`` and be finite."""
    try:
        tensor = torch.as_tensor(values.detach() if isinstance(values, torch.Tensor) else values)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{what} must be an array of numbers for {where}, got {type(values).__name__}: {error}") from error
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{what} must have shape {shape} for {where}, got {tuple(tensor.shape)}.")
    if tensor.is_complex() or not torch.isfinite(tensor.double()).all():
        raise ValueError(f"{what} must hold finite real numbers for {where}.")
    return tensor.to(like.device, like.dtype)
