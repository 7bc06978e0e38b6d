"""Numerical equivalence with timm's FocalNet, through load_timm_weights."""

import json
from pathlib import Path

import numpy as np
import pytest

from focaledu import FocalNet
from focaledu.convert import load_timm_weights

pytestmark = pytest.mark.backends

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("timm_*.npz"))
# Float32 round-off between PyTorch and XLA/oneDNN kernels; tanh-GELU or a
# wrong LayerNorm epsilon moves the logits by 6e-5 or more (measured when the
# fixtures were made), so this still catches them.
TOLERANCE = 1e-5


def load_fixture(path):
    data = np.load(path)
    state = {k[len("state/"):]: data[k] for k in data.files if k.startswith("state/")}
    return json.loads(str(data["config"])), state, data["input"], data["logits"]


def test_fixtures_cover_every_flag_and_focal_levels_1_to_4():
    configs = [load_fixture(p)[0] for p in FIXTURES]
    assert len(configs) >= 5
    for flag in ("use_conv_embed", "use_layerscale", "use_postln", "use_postln_in_modulation", "normalize_modulator"):
        assert {c[flag] for c in configs} == {True, False}, flag
    assert {1, 2, 3, 4} <= {level for c in configs for level in c["focal_levels"]}
    assert any(isinstance(c["image_size"], list) and c["image_size"][0] != c["image_size"][1] for c in configs)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_logits_match_timm(path):
    config, state, images, expected = load_fixture(path)
    model = FocalNet(**config)
    assert load_timm_weights(model, state) == len(state)
    logits = np.asarray(model.predict(images, verbose=0))
    error = np.abs(logits - expected).max()
    print(f"{path.stem}: max abs error {error:.2e}")
    assert error <= TOLERANCE


def _fixture(name):
    return load_fixture(next(p for p in FIXTURES if name in p.stem))


def test_state_dict_errors_name_every_offending_tensor_and_load_nothing():
    config, state, images, _ = _fixture("s1_plain")
    model = FocalNet(**config)
    before = [w.copy() for w in model.get_weights()]
    broken = dict(state)
    del broken["norm.weight"]
    broken["layers.0.blocks.0.modulation.extra"] = np.zeros(3)
    broken["head.fc.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError) as info:
        load_timm_weights(model, broken)
    message = str(info.value)
    assert "norm.weight" in message and "missing" in message
    assert "layers.0.blocks.0.modulation.extra" in message and "unexpected" in message
    assert "head.fc.weight" in message and "wrong shape" in message
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_skip_prefixes_keeps_a_new_head():
    config, state, _, _ = _fixture("s1_plain")
    model = FocalNet(**dict(config, num_classes=3))
    head = model.get_layer("head").get_weights()
    loaded = load_timm_weights(model, state, skip_prefixes=("head.",))
    assert loaded == len(state) - 2
    np.testing.assert_array_equal(model.get_layer("head").get_weights()[0], head[0])
    np.testing.assert_array_equal(model.get_layer("norm").get_weights()[0], state["norm.weight"])


def test_live_equivalence_with_timm(tmp_path):
    """Runs only where torch and timm are installed (never a project dependency)."""
    torch = pytest.importorskip("torch")
    timm_focalnet = pytest.importorskip("timm.models.focalnet")
    torch.manual_seed(0)
    reference = timm_focalnet.FocalNet(
        num_classes=5, embed_dim=16, depths=(1, 1, 2, 1),
        focal_levels=(1, 2, 3, 4), focal_windows=(3, 5, 3, 1), layerscale_value=0.5,
        use_post_norm=True, use_overlap_down=True,
    ).eval()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        images = torch.rand(2, 3, 64, 96)
        expected = reference(images).numpy()
    model = FocalNet(
        image_size=(64, 96), num_classes=5, embed_dim=16, depths=(1, 1, 2, 1), focal_levels=(1, 2, 3, 4),
        focal_windows=(3, 5, 3, 1), use_layerscale=True, layerscale_value=0.5, use_postln=True,
        use_conv_embed=True,
    )
    load_timm_weights(model, reference.state_dict())
    logits = np.asarray(model.predict(images.permute(0, 2, 3, 1).numpy(), verbose=0))
    error = np.abs(logits - expected).max()
    print(f"live timm {timm_focalnet.__name__}: max abs error {error:.2e}")
    assert error <= TOLERANCE
