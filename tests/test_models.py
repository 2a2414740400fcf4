import re

import pytest
import torch

from memnotebooks.models import MODELS, build_model, count_parameters, edit_last_layer, last_linear_layer, probe_layers

# (channels, height, width) of every dataset the book supports, and its class count.
SHAPES = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "tiny_imagenet": ((3, 64, 64), 200),
}
# AlexNet is the paper's model for CIFAR-100 and Tiny-ImageNet; its pooling cannot take 8x8 or 28x28.
UNSUPPORTED = {("alexnet", "digits"), ("alexnet", "mnist"), ("alexnet", "fashion_mnist")}


@pytest.mark.parametrize("dataset", SHAPES)
@pytest.mark.parametrize("model_name", MODELS)
def test_forward_shape_on_every_dataset(model_name, dataset):
    shape, n_classes = SHAPES[dataset]
    if (model_name, dataset) in UNSUPPORTED:
        with pytest.raises(ValueError, match="alexnet.*cannot take inputs of shape " + re.escape(str(shape))):
            build_model(model_name, shape, n_classes)
        return
    model = build_model(model_name, shape, n_classes).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, n_classes)


@pytest.mark.parametrize(
    "model_name, shape, layer, width",
    [
        ("cnn", (1, 28, 28), "flatten", 576),
        ("cnn", (3, 32, 32), "flatten", 1024),
        ("cnn", (1, 8, 8), "flatten", 64),
        ("alexnet", (3, 32, 32), "flatten", 256),
        ("alexnet", (3, 64, 64), "flatten", 256 * 6 * 6),
        ("mlp", (1, 28, 28), "fc4", 2048),
    ],
)
def test_layer_widths_match_the_paper(model_name, shape, layer, width):
    from memnotebooks.activations import layer_table

    table = layer_table(build_model(model_name, shape, 10), shape).set_index("layer")
    assert table.loc[layer, "n_features"] == width


def test_probe_layers_use_the_papers_names_in_order():
    assert probe_layers(build_model("mlp", (1, 8, 8), 10)) == ["input", "fc1", "fc2", "fc3", "fc4"]
    assert probe_layers(build_model("cnn", (1, 8, 8), 10)) == ["input", "flatten", "fc1", "fc2", "fc3"]
    assert probe_layers(build_model("alexnet", (3, 32, 32), 100)) == ["flatten", "fc1", "fc2"]
    assert probe_layers(build_model("resnet18", (3, 32, 32), 10)) == [
        "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"
    ]


def test_cnn_classifier_has_no_bias_and_tiny_imagenet_alexnet_gets_its_own_classifier():
    assert build_model("cnn", (1, 28, 28), 10).classifier.bias is None
    alexnet = build_model("alexnet", (3, 64, 64), 200)
    assert alexnet.variant == "imagenet" and alexnet.fc1[0].in_features == 9216
    assert build_model("alexnet", (3, 32, 32), 100).variant == "cifar"


def test_building_does_not_touch_batchnorm_statistics():
    model = build_model("resnet18", (3, 32, 32), 10)
    assert torch.equal(model.bn1.running_mean, torch.zeros(64)) and model.bn1.num_batches_tracked == 0


def test_unknown_model_and_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="'vgg'.*mlp, cnn, alexnet, resnet18"):
        build_model("vgg", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="cnn cannot take inputs of shape"):
        build_model("cnn", (1, 4, 4), 10)
    with pytest.raises(ValueError, match=r"input_shape must be \(channels, height, width\)"):
        build_model("mlp", (64,), 10)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        build_model("mlp", (1, 8, 8), 1)


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_dropout_follows_each_dense_layer_and_rate_zero_is_the_papers_model(model_name):
    torch.manual_seed(0)
    plain = build_model(model_name, (1, 28, 28), 10)
    torch.manual_seed(0)
    zero = build_model(model_name, (1, 28, 28), 10, dropout=0.0)
    assert plain.state_dict().keys() == zero.state_dict().keys()
    assert not any(isinstance(m, torch.nn.Dropout) for m in zero.modules())
    torch.manual_seed(0)
    dropped = build_model(model_name, (1, 28, 28), 10, dropout=0.5)
    n_dense = sum(name.startswith("fc") for name in probe_layers(dropped))
    assert sum(isinstance(m, torch.nn.Dropout) for m in dropped.modules()) == n_dense
    x = torch.randn(4, 1, 28, 28)
    dropped.eval()
    assert torch.equal(dropped(x), plain.eval()(x))  # same weights; dropout is off in evaluation
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1"):
        build_model(model_name, (1, 28, 28), 10, dropout=1)


def test_width_scales_every_hidden_layer_of_the_cnn():
    half = build_model("cnn", (1, 28, 28), 10, width=0.5)
    assert [m.out_channels for m in half.features if isinstance(m, torch.nn.Conv2d)] == [8, 8, 16, 16, 32, 32]
    assert half.fc1[0].in_features == 32 * 3 * 3 and half.classifier.in_features == 125
    assert half(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"width \(a multiplier of the hidden layers' widths\) must be a number > 0, got -1"):
        build_model("cnn", (1, 28, 28), 10, width=-1)


def test_build_model_names_the_options_a_model_takes():
    with pytest.raises(ValueError, match="Model 'resnet18' takes no option 'dropout'; its options are: none"):
        build_model("resnet18", (3, 32, 32), 10, dropout=0.5)
    with pytest.raises(ValueError, match="Model 'alexnet' takes no option 'width'; its options are: variant"):
        build_model("alexnet", (3, 32, 32), 10, width=2)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        build_model("mlp", (1, 8, 8), 1)


def test_count_parameters_counts_the_weights_learned_not_the_buffers():
    mlp = build_model("mlp", (1, 8, 8), 10, width=0.125)
    widths = [64, *(layer.out_features for layer in mlp.modules() if isinstance(layer, torch.nn.Linear))]
    assert count_parameters(mlp) == sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    # A batch norm learns a scale and a shift per channel; its running statistics are buffers.
    norm = torch.nn.BatchNorm1d(5)
    assert sum(b.numel() for b in norm.buffers()) > 0 and count_parameters(norm) == 10
    assert count_parameters(torch.nn.Sequential(mlp, norm)) == count_parameters(mlp) + 10


@pytest.mark.parametrize(
    "model_name, shape, name, has_bias",
    [("mlp", (1, 8, 8), "classifier", True), ("cnn", (1, 8, 8), "classifier", False), ("alexnet", (3, 32, 32), "classifier", True), ("resnet18", (3, 32, 32), "fc", True)],
)
def test_the_last_linear_layer_computes_the_output_from_the_last_probe_layer(model_name, shape, name, has_bias):
    from memnotebooks.activations import layer_table

    model = build_model(model_name, shape, 10)
    found, layer = last_linear_layer(model)
    assert found == name and layer is model.get_submodule(name) and (layer.bias is not None) == has_bias
    assert layer.in_features == layer_table(model, shape).n_features.iloc[-1] and layer.out_features == 10


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_edit_last_layer_returns_an_edited_copy(model_name):
    from memnotebooks.activations import extract_activations

    torch.manual_seed(0)
    model = build_model(model_name, (1, 8, 8), 10).eval()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    _, layer = last_linear_layer(model)
    weight = torch.randn(10, layer.in_features, dtype=torch.float64).numpy()
    edited = edit_last_layer(model, weight)
    x = torch.randn(5, 1, 8, 8)
    hidden = extract_activations(model, x, [probe_layers(model)[-1]])[probe_layers(model)[-1]]
    with torch.no_grad():
        torch.testing.assert_close(edited(x), hidden @ torch.from_numpy(weight).float().T)  # no bias: zero or none
        edited.classifier.weight.add_(1.0)  # the copy's parameters are its own
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())
    assert (edited.classifier.bias is None) == (model.classifier.bias is None) and not edited.training
    # A bias for a layer without one gives the copy one; the model keeps none.
    bias = torch.arange(10.0)
    with_bias = edit_last_layer(model, weight, bias)
    assert torch.equal(with_bias.classifier.bias.detach(), bias) and (model_name == "mlp") == (model.classifier.bias is not None)
    with torch.no_grad():
        torch.testing.assert_close(with_bias(x), hidden @ torch.from_numpy(weight).float().T + bias)


def test_edit_last_layer_checks_shapes_and_values():
    model = build_model("cnn", (1, 8, 8), 10)
    where = r"the last layer 'classifier' of CNN \(10 outputs, 250 inputs\)"
    with pytest.raises(ValueError, match=rf"weight must have shape \(10, 250\) for {where}, got \(250, 10\)"):
        edit_last_layer(model, torch.zeros(250, 10))
    with pytest.raises(ValueError, match=rf"bias must have shape \(10,\) for {where}, got \(9,\)"):
        edit_last_layer(model, torch.zeros(10, 250), torch.zeros(9))
    with pytest.raises(ValueError, match=rf"weight must hold finite real numbers for {where}"):
        edit_last_layer(model, torch.full((10, 250), float("nan")))
    with pytest.raises(ValueError, match=rf"weight must be an array of numbers for {where}, got str"):
        edit_last_layer(model, "weights")


class _Untraceable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.classifier = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.classifier(x) if x.sum() > 0 else x  # data-dependent control flow


class _ActivatedOutput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.classifier = torch.nn.Linear(2, 2)

    def forward(self, x):
        return torch.relu(self.classifier(x))


def test_a_last_layer_that_is_not_linear_is_named():
    with pytest.raises(ValueError, match="Cannot find the last layer of _Untraceable: torch.fx cannot trace it"):
        last_linear_layer(_Untraceable())
    with pytest.raises(ValueError, match="The last layer of _ActivatedOutput is not a module but call_function .*relu"):
        last_linear_layer(_ActivatedOutput())
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match=r"The last layer of Sequential is '0', a Conv2d \(Conv2d\(1, 2.*not an nn.Linear"):
        last_linear_layer(conv)
