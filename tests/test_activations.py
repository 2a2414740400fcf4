import pytest
import torch

from memnotebooks.activations import embed_2d, extract_activations, layer_table
from memnotebooks.models import build_model


def manual_forward(model, name, x):
    """Each model's probe layers computed by calling its submodules by hand."""
    outputs = {}
    if name == "mlp":
        h = outputs["input"] = model.flatten(x)
        for layer in model.hidden_names:
            h = outputs[layer] = getattr(model, layer)(h)
    elif name in ("cnn", "alexnet"):
        outputs["input"] = x.flatten(1)
        h = outputs["flatten"] = model.flatten(getattr(model, "avgpool", torch.nn.Identity())(model.features(x)))
        for layer in ("fc1", "fc2", "fc3"):
            if hasattr(model, layer):
                h = outputs[layer] = getattr(model, layer)(h)
    else:  # resnet18
        h = outputs["maxpool"] = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for layer in ("layer1", "layer2", "layer3", "layer4", "avgpool"):
            h = outputs[layer] = getattr(model, layer)(h)
    return {k: v.flatten(1) for k, v in outputs.items()}


@pytest.mark.parametrize("name, shape", [("mlp", (1, 8, 8)), ("cnn", (1, 28, 28)), ("alexnet", (3, 32, 32)), ("resnet18", (3, 32, 32))])
def test_probe_outputs_equal_a_manual_forward(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 10).eval()
    x = torch.randn(7, *shape)
    got = extract_activations(model, x, batch_size=3)
    with torch.no_grad():
        expected = manual_forward(model, name, x)
    assert list(got) == list(model.probe_layers)
    for layer, value in got.items():
        assert value.dtype == torch.float32 and value.shape[0] == 7
        torch.testing.assert_close(value, expected[layer], rtol=1e-5, atol=1e-5)


def test_selected_layers_and_unknown_layer():
    model = build_model("cnn", (1, 8, 8), 10)
    out = extract_activations(model, torch.randn(4, 1, 8, 8), ["fc2", "flatten"])
    assert list(out) == ["fc2", "flatten"] and out["fc2"].shape == (4, 250)
    with pytest.raises(ValueError, match=r"'fc4'.*choose from: input, flatten, fc1, fc2, fc3"):
        extract_activations(model, torch.randn(4, 1, 8, 8), ["fc4"])


def test_embed_2d_returns_tidy_coordinates_per_layer():
    acts = {"a": torch.randn(50, 6), "b": torch.randn(50, 3)}
    frame = embed_2d(acts, torch.arange(50) % 5, max_points=20)
    assert frame.groupby("layer").size().to_dict() == {"a": 20, "b": 20}
    assert set(frame.columns) == {"layer", "component_1", "component_2", "label", "index"}
    # The same points are drawn for every layer.
    assert (frame[frame.layer == "a"]["index"].values == frame[frame.layer == "b"]["index"].values).all()


def test_extraction_leaves_the_model_as_it_found_it():
    model = build_model("cnn", (1, 8, 8), 10).train()
    model.fc1.eval()  # a mixed state, e.g. a frozen submodule, is kept as it is
    modes = {name: module.training for name, module in model.named_modules()}
    extract_activations(model, torch.randn(4, 1, 8, 8), device="cpu")
    layer_table(model, (1, 8, 8))
    assert {name: module.training for name, module in model.named_modules()} == modes
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_extraction_on_another_device_leaves_the_model_where_it_was():
    model = build_model("cnn", (1, 8, 8), 10)
    out = extract_activations(model, torch.randn(4, 1, 8, 8), device="cuda", output_device="cuda")
    assert out["fc1"].is_cuda and next(model.parameters()).device.type == "cpu"
