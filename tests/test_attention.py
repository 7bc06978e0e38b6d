"""Self-attention from scratch: maths, the Keras layer equivalence, the block, the toys, the checks."""

import keras
import numpy as np
import pytest
from keras import ops

import focaledu
from focaledu import FocalNetBlock, checks
from focaledu.attention import (
    MultiHeadSelfAttention,
    SelfAttentionBlock,
    focal_aggregation_matrix,
    focal_modulation_1d,
    merge_heads,
    scaled_dot_product_attention,
    self_attention_1d,
    split_heads,
    to_keras_mha,
)
from focaledu.checks import attention as attention_checks
from layer_checks import check_layer, constructor_args, random_inputs

# Most tests are backend-agnostic and also run on JAX (`make test`); the
# heaviest (full layer round trips with jit training) run once, on TensorFlow,
# where each compiles in a fraction of the time.
backends = pytest.mark.backends


def numpy_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -1e9)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ v, weights


def to_numpy(x):
    return ops.convert_to_numpy(x)


# --- scaled_dot_product_attention -----------------------------------------------------


@backends
@pytest.mark.parametrize(
    "q_shape, k_shape, d_v", [((4, 8), (4, 8), 8), ((3, 4), (5, 4), 6), ((2, 2, 5, 8), (2, 2, 7, 8), 3)]
)
def test_sdpa_matches_numpy(q_shape, k_shape, d_v):
    q, k = random_inputs(q_shape, seed=0), random_inputs(k_shape, seed=1)
    v = random_inputs(k_shape[:-1] + (d_v,), seed=2)
    out, weights = scaled_dot_product_attention(q, k, v, return_scores=True)
    expected, expected_weights = numpy_attention(q, k, v)
    np.testing.assert_allclose(to_numpy(out), expected, atol=1e-5)
    np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-6)
    np.testing.assert_allclose(to_numpy(weights).sum(-1), 1.0, atol=1e-6)


@backends
def test_sdpa_mask_blocks_keys():
    q, k, v = (random_inputs((5, 4), seed=s) for s in range(3))
    causal = np.tril(np.ones((5, 5), bool))
    out, weights = scaled_dot_product_attention(q, k, v, mask=causal, return_scores=True)
    assert np.all(to_numpy(weights)[~causal] < 1e-30)
    np.testing.assert_allclose(to_numpy(out), numpy_attention(q, k, v, causal)[0], atol=1e-5)
    np.testing.assert_allclose(to_numpy(out)[0], v[0], atol=1e-6)  # the first token sees only itself


@backends
def test_split_and_merge_heads():
    x = np.arange(2 * 3 * 6, dtype="float32").reshape(2, 3, 6)
    heads = to_numpy(split_heads(x, 3))
    assert heads.shape == (2, 3, 3, 2)
    np.testing.assert_array_equal(heads[1, 2, 0], x[1, 0, 4:6])  # head 2 owns channels 4 and 5
    np.testing.assert_array_equal(to_numpy(merge_heads(heads)), x)


# --- MultiHeadSelfAttention -----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, input_shape, weights",
    [
        (dict(dim=8, num_heads=2), (2, 5, 8), 8),
        pytest.param(
            dict(dim=6, num_heads=3, qkv_bias=False, attn_drop=0.1, proj_drop=0.1), (1, 2, 3, 6), 5,
            marks=backends,
        ),
    ],
)
def test_mhsa_layer(kwargs, input_shape, weights, tmp_path):
    check_layer(MultiHeadSelfAttention, kwargs, input_shape, input_shape, weights, tmp_path)


@backends
@pytest.mark.parametrize("num_heads, input_shape", [(1, (2, 6, 8)), (2, (2, 6, 8)), (4, (2, 3, 4, 8))])
def test_mhsa_equals_keras_multi_head_attention(num_heads, input_shape):
    keras.utils.set_random_seed(0)
    x = random_inputs(input_shape)
    layer = MultiHeadSelfAttention(8, num_heads)
    ours, weights = layer(x, return_attention_scores=True)
    mha = to_keras_mha(layer, input_shape)
    theirs, their_weights = mha(x, x, return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(ours), to_numpy(theirs), atol=1e-5)
    # Keras keeps the spatial axes of a feature map: (B, heads, H, W, H, W).
    n = int(np.prod(input_shape[1:-1]))
    np.testing.assert_allclose(
        to_numpy(weights), to_numpy(their_weights).reshape(input_shape[0], num_heads, n, n), atol=1e-6
    )


@backends
def test_mhsa_is_the_library_attention_per_head():
    keras.utils.set_random_seed(1)
    x = random_inputs((1, 5, 4))
    layer = MultiHeadSelfAttention(4, 2)
    y = layer(x)
    q, k, v = (split_heads(f(x), 2) for f in (layer.q, layer.k, layer.v))
    expected = layer.proj(merge_heads(scaled_dot_product_attention(q, k, v)))
    np.testing.assert_allclose(to_numpy(y), to_numpy(expected), atol=1e-6)


@backends
def test_mhsa_errors():
    with pytest.raises(ValueError, match="must divide `dim`"):
        MultiHeadSelfAttention(10, 3)
    with pytest.raises(ValueError, match=r"received shape \(2, 5, 6\)"):
        MultiHeadSelfAttention(8, 2)(random_inputs((2, 5, 6)))
    with pytest.raises(ValueError, match="floating-point"):
        MultiHeadSelfAttention(8, 2)(np.zeros((1, 4, 8), "int32"))
    layer = MultiHeadSelfAttention(8, 2, qkv_bias=False)
    layer(random_inputs((1, 4, 8)))
    with pytest.raises(ValueError, match="qkv_bias=True"):
        to_keras_mha(layer)


# --- SelfAttentionBlock ---------------------------------------------------------------


def test_self_attention_block(tmp_path):
    kwargs = dict(dim=8, num_heads=2, use_layerscale=True, drop=0.1, attn_drop=0.1, drop_path=0.1)
    check_layer(SelfAttentionBlock, kwargs, (2, 3, 4, 8), (2, 3, 4, 8), 18, tmp_path)


@backends
def test_block_config_covers_every_argument():
    block = SelfAttentionBlock(
        8, num_heads=2, mlp_ratio=2.0, qkv_bias=False, drop=0.1, attn_drop=0.2, drop_path=0.3,
        use_layerscale=True, layerscale_value=0.5,
    )
    config = block.get_config()
    assert not [name for name in constructor_args(SelfAttentionBlock) if name not in config]
    assert SelfAttentionBlock.from_config(config).get_config() == config
    assert config["attn_drop"] == 0.2 and config["qkv_bias"] is False


@backends
def test_block_is_pre_norm_attention_then_mlp():
    keras.utils.set_random_seed(2)
    x = ops.convert_to_tensor(random_inputs((1, 2, 3, 8)))  # torch does not add a NumPy x to a layer's output
    block = SelfAttentionBlock(8, num_heads=2, mlp_ratio=2.0)
    y, weights = block(x, return_attention_scores=True)
    assert tuple(weights.shape) == (1, 2, 6, 6)
    h = x + block.attn(block.norm1(x))
    expected = h + block.mlp(block.norm2(h))
    np.testing.assert_allclose(to_numpy(y), to_numpy(expected), atol=1e-5)
    assert block.norm1.epsilon == block.norm2.epsilon == 1e-5
    # dim 8: norms 2 * 16, attention 4 * (64 + 8), MLP (8*16 + 16) + (16*8 + 8)
    assert block.count_params() == 32 + 288 + 280


@backends
def test_block_swaps_with_focalnet_block():
    inputs = keras.Input((4, 4, 8))
    for block in (SelfAttentionBlock(8, 2), FocalNetBlock(8)):
        assert tuple(block(inputs, training=False).shape) == (None, 4, 4, 8)
    tokens = SelfAttentionBlock(8, 2)(random_inputs((2, 16, 8)))  # (B, N, C) tokens work too
    assert tuple(tokens.shape) == (2, 16, 8)


# --- Chapter 2 toys -------------------------------------------------------------------


@backends
def test_self_attention_1d_is_sdpa_of_projections():
    x, wq, wk, wv = (random_inputs(s, seed=i) for i, s in enumerate([(5, 4), (4, 3), (4, 3), (4, 2)]))
    y, weights = self_attention_1d(x, wq, wk, wv, return_weights=True)
    expected, expected_weights = numpy_attention(x @ wq, x @ wk, x @ wv)
    np.testing.assert_allclose(to_numpy(y), expected, atol=1e-5)
    np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-6)


@backends
def test_focal_modulation_1d_by_hand():
    x = np.array([[1, 0], [0, 1], [0, 0]], "float32")
    eye = np.eye(2, dtype="float32")
    y, m = focal_modulation_1d(x, eye, eye, np.array([0.25, 0.5, 0.25], "float32"), return_modulator=True)
    # channel 0: local [.5, .25, 0], mean .25; channel 1: local [.25, .5, .25], mean 1/3
    np.testing.assert_allclose(to_numpy(m), [[0.75, 7 / 12], [0.5, 5 / 6], [0.25, 7 / 12]], atol=1e-6)
    np.testing.assert_allclose(to_numpy(y), [[0.75, 0], [0, 5 / 6], [0, 0]], atol=1e-6)


@backends
def test_focal_toy_local_context_is_keras_depthwise_conv():
    z = random_inputs((1, 7, 3))
    kernel = random_inputs((5, 3), seed=1)
    conv = keras.layers.DepthwiseConv1D(5, padding="same", use_bias=False)
    conv.build(z.shape)
    conv.set_weights([kernel[:, :, None]])
    local = to_numpy(conv(z))[0]
    eye = np.eye(3, dtype="float32")
    _, m = focal_modulation_1d(z[0], eye, eye, kernel, return_modulator=True)
    np.testing.assert_allclose(to_numpy(m), local + local.mean(0), atol=1e-5)


@backends
def test_focal_aggregation_matrix_reproduces_the_modulator():
    kernel = np.array([0.1, 0.5, 0.2], "float32")
    z = random_inputs((6, 3))
    eye = np.eye(3, dtype="float32")
    _, m = focal_modulation_1d(z, eye, eye, kernel, return_modulator=True)
    a = to_numpy(focal_aggregation_matrix(6, kernel))
    np.testing.assert_allclose(a @ z, to_numpy(m), atol=1e-5)
    # Column 1 of the band holds kernel[2], kernel[1], kernel[0] in rows 0, 1, 2.
    assert a[2, 1] == pytest.approx(0.1 + (0.2 + 0.5 + 0.1) / 6)
    assert a[5, 1] == pytest.approx((0.2 + 0.5 + 0.1) / 6)
    with pytest.raises(ValueError, match="odd length"):
        focal_aggregation_matrix(4, [0.5, 0.5])


# --- exercise checks ------------------------------------------------------------------


@backends
@pytest.mark.parametrize("name", sorted(attention_checks.REFERENCES))
def test_check_accepts_the_reference(name):
    result = getattr(checks, name)(attention_checks.REFERENCES[name])
    assert result, result.message


@backends
@pytest.mark.parametrize(
    "name, message, wrong",
    [(name, message, wrong) for name, pairs in attention_checks.MISTAKES.items() for message, wrong in pairs],
    ids=lambda value: value[:40] if isinstance(value, str) else "",
)
def test_check_names_each_mistake(name, message, wrong):
    result = getattr(checks, name)(wrong)
    assert not result
    assert result.message.startswith(message), result.message


@backends
def test_checks_recognise_keras_ops_solutions():
    def naive_softmax(x):
        e = ops.exp(x)
        return e / ops.sum(e, axis=-1, keepdims=True)

    def stable_softmax(x):
        e = ops.exp(ops.subtract(x, ops.max(x, axis=-1, keepdims=True)))  # x is NumPy: `-` would fail on torch
        return e / ops.sum(e, axis=-1, keepdims=True)

    assert checks.softmax(stable_softmax)
    result = checks.softmax(naive_softmax)
    assert not result and "overflowed" in result.message and "large logits" in result.message
    assert checks.softmax(lambda x: ops.softmax(x, axis=-1))
    assert checks.scaled_dot_product_attention(scaled_dot_product_attention)


@backends
def test_checks_report_stubs_and_unknown_errors():
    def stub(x):
        raise NotImplementedError("subtract the row maximum first")

    result = checks.softmax(stub)
    assert not result and "row maximum" in result.message
    result = checks.softmax(lambda x: np.full_like(x, np.nan))
    assert not result and "nan or inf" in result.message
    result = checks.scaled_dot_product_attention(lambda q, k, v: q @ k @ v)
    assert not result and "raised" in result.message


@pytest.mark.backends
@pytest.mark.parametrize("shape", [(8, 8, 16), (64, 16)])
def test_attention_scores_in_a_functional_model(shape):
    """return_attention_scores=True works on symbolic inputs: a functional model
    can expose the weights of a block (no eager re-run needed)."""
    inputs = keras.Input(shape)
    for layer in (focaledu.MultiHeadSelfAttention(16, 2), focaledu.SelfAttentionBlock(16, 2)):
        y, weights = layer(inputs, return_attention_scores=True)
        assert tuple(y.shape) == (None, *shape) and tuple(weights.shape) == (None, 2, 64, 64)
        model = keras.Model(inputs, [y, weights])
        out, w = model(np.random.default_rng(0).normal(size=(3, *shape)).astype("float32"))
        eager_out, eager_w = layer(np.random.default_rng(0).normal(size=(3, *shape)).astype("float32"),
                                   return_attention_scores=True)
        np.testing.assert_allclose(to_numpy(w), to_numpy(eager_w), atol=1e-6)
        np.testing.assert_allclose(to_numpy(w).sum(-1), 1.0, atol=1e-5)
        assert to_numpy(out).shape == (3, *shape)
