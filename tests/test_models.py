"""The transformer: token layout, causality, the pruned forward, exact sizes, seeded init, weight-decay groups,
schedules, chunked evaluation."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from models import ModelConfig, build_model, cosine, gelu, make_optimizer, param_groups, to_tokens, train_step, triangle
from pipeline.evaluation import transformer_predictions
from tasks import EvalSet


def test_token_layout_worked_example():
    xs = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    ys = torch.tensor([[5.0, 6.0]])
    expected = torch.tensor([[[0.0, 1, 2], [5, 0, 0], [0, 3, 4], [6, 0, 0]]])
    assert torch.equal(to_tokens(xs, ys), expected)


def expected_parameters(n_dims, n_points, n_layer, n_embd):
    read_in, positions, final_ln, read_out = (n_dims + 1) * n_embd, 2 * n_points * n_embd, 2 * n_embd, n_embd
    block = 2 * 2 * n_embd + (n_embd * 3 * n_embd + 3 * n_embd) + (n_embd**2 + n_embd)
    block += (n_embd * 4 * n_embd + 4 * n_embd) + (4 * n_embd * n_embd + n_embd)
    return read_in + positions + n_layer * block + final_ln + read_out


@pytest.mark.parametrize("size, count", [("small", 202_752), ("base", 1_591_808), ("large", 9_488_384)])
def test_exact_parameter_counts(size, count):
    model = build_model(ModelConfig.of_size(size, n_dims=8, n_points=16), seed=0)
    config = model.config
    assert count == expected_parameters(8, 16, config.n_layer, config.n_embd)
    assert sum(p.numel() for p in model.parameters()) == count


def test_same_seed_same_weights_and_init_scales():
    config = ModelConfig(n_dims=3, n_points=8, n_layer=2, n_embd=64, n_head=2)
    a, b, c = build_model(config, seed=5), build_model(config, seed=5), build_model(config, seed=6)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb), name
        assert pa.ndim == 1 or not torch.equal(pa, pc), name
    assert abs(a.blocks[0].mlp.c_fc.weight.std() - 0.02) < 0.001
    for projection in (a.blocks[0].mlp.c_proj, a.blocks[1].attn.c_proj):  # residual writers: scaled down
        assert abs(projection.weight.std() - 0.02 / math.sqrt(4)) < 0.0005
    assert torch.all(a.blocks[1].attn.c_attn.bias == 0) and torch.all(a.ln_f.weight == 1)


def test_building_a_model_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    build_model(ModelConfig(n_dims=3, n_points=8, n_layer=1, n_embd=32, n_head=2), seed=0)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("k", [0, 3, 6])
def test_predictions_are_causal(k):
    model = build_model(ModelConfig(n_dims=4, n_points=8, n_layer=2, n_embd=32, n_head=2), seed=1)
    gen = torch.Generator().manual_seed(k)
    xs, ys = torch.randn(3, 8, 4, generator=gen), torch.randn(3, 8, generator=gen)
    base = model(xs, ys)
    ys2 = ys.clone()
    ys2[:, k] += 10.0  # y_k (0-based) must not reach predictions at positions <= k
    xs2 = xs.clone()
    xs2[:, k + 1] += 10.0  # nor may x_{k+1}
    for out in (model(xs, ys2), model(xs2, ys)):
        torch.testing.assert_close(out[:, : k + 1], base[:, : k + 1], rtol=0, atol=0)
        assert not torch.allclose(out[:, k + 1 :], base[:, k + 1 :])


def test_gelu_is_torchs_tanh_gelu_and_so_is_its_gradient():
    x = torch.linspace(-12.0, 12.0, 2001, dtype=torch.float64, requires_grad=True)
    ours, theirs = gelu(x), F.gelu(x, approximate="tanh")
    torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=1e-15)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(theirs, x, grad)[0])
    assert torch.autograd.gradcheck(gelu, x[::50].detach().requires_grad_())
    x32 = x.detach().float()
    torch.testing.assert_close(gelu(x32), F.gelu(x32, approximate="tanh"), rtol=1e-6, atol=1e-6)


def whole_network_at_x_tokens(model, xs, ys):
    """The GPT-2 network on all 2K tokens, every block at every token, attention written out from its
    definition and torch's tanh GELU, read at the x tokens: what the model's pruned forward must equal."""
    tokens = to_tokens(xs, ys)
    h = model.read_in(tokens) + model.wpe.weight[: tokens.shape[1]]
    length, width = tokens.shape[1], model.config.n_embd
    heads, future = model.config.n_head, torch.ones(length, length, dtype=torch.bool).triu(1)
    for block in model.blocks:
        q, k, v = block.attn.c_attn(block.ln_1(h)).split(width, dim=2)
        q, k, v = (t.unflatten(2, (heads, -1)).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2) / math.sqrt(width // heads)).masked_fill(future, -math.inf)
        h = h + block.attn.c_proj((scores.softmax(-1) @ v).transpose(1, 2).flatten(2))
        h = h + block.mlp.c_proj(F.gelu(block.mlp.c_fc(block.ln_2(h)), approximate="tanh"))
    return model.read_out(model.ln_f(h))[:, 0::2, 0]


@pytest.mark.parametrize("n_layer, n_points", [(1, 8), (3, 8), (3, 1)])
def test_the_pruned_forward_equals_the_whole_network_read_at_the_x_tokens(n_layer, n_points):
    # The model leaves out y_K and computes its last block at the x tokens only: the same function.
    model = build_model(ModelConfig(n_dims=4, n_points=8, n_layer=n_layer, n_embd=32, n_head=4), seed=2).double()
    gen = torch.Generator().manual_seed(n_layer)
    with torch.no_grad():
        for p in model.parameters():  # away from the init (zero biases, unit LayerNorms) so every term counts
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    xs = torch.randn(5, n_points, 4, generator=gen, dtype=torch.float64)
    ys = torch.randn(5, n_points, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(model(xs, ys), whole_network_at_x_tokens(model, xs, ys), rtol=1e-12, atol=1e-12)


def test_shorter_contexts_give_the_same_prefix_predictions():
    model = build_model(ModelConfig(n_dims=4, n_points=8, n_layer=2, n_embd=32, n_head=2), seed=1)
    xs, ys = torch.randn(2, 8, 4), torch.randn(2, 8)
    torch.testing.assert_close(model(xs[:, :5], ys[:, :5]), model(xs, ys)[:, :5])


def test_bad_model_input_is_named():
    model = build_model(ModelConfig(n_dims=4, n_points=8, n_layer=1, n_embd=32, n_head=2), seed=1)
    with pytest.raises(ValueError, match="n_points=9 exceeds the model's context of 8 points"):
        model(torch.zeros(1, 9, 4), torch.zeros(1, 9))
    with pytest.raises(ValueError, match=r"expected xs \(B, K, 4\).*\(1, 8, 3\)"):
        model(torch.zeros(1, 8, 3), torch.zeros(1, 8))
    with pytest.raises(ValueError, match="n_embd=30 must be divisible by n_head=4"):
        ModelConfig(n_dims=4, n_points=8, n_layer=1, n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="n_layer must be a positive integer, got 0"):
        ModelConfig(n_dims=4, n_points=8, n_layer=0, n_embd=32, n_head=2)


def test_weight_decay_groups_hold_only_block_matrices_once_each():
    model = build_model(ModelConfig(n_dims=4, n_points=8, n_layer=3, n_embd=32, n_head=2), seed=0)
    decay, rest = param_groups(model, 0.1)
    decayed = {id(p) for p in decay["params"]}
    assert len(decayed) == 3 * 4  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    assert decayed.isdisjoint(id(p) for p in rest["params"])
    assert len(decayed) + len(rest["params"]) == len(list(model.parameters()))
    for name, p in model.named_parameters():
        in_block_linear = name.startswith("blocks.") and p.ndim == 2
        assert (id(p) in decayed) == in_block_linear, name
    assert isinstance(model.read_in, nn.Linear) and id(model.read_in.weight) not in decayed


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_dims=2, n_points=4, n_layer=1, n_embd=32, n_head=2), seed=0)
    optimizer = make_optimizer(model, lr=1e-2)
    xs, ys = torch.randn(64, 4, 2), torch.randn(64, 4)
    first = train_step(model, optimizer, xs, ys, 1e-2)
    for _ in range(30):
        last = train_step(model, optimizer, xs, ys, 1e-2)
    assert last < 0.8 * first


@pytest.mark.parametrize("schedule", [triangle, cosine])
def test_schedules_at_their_edges(schedule):
    kw = dict(lr=1e-3, warmup_steps=100, total_steps=400)
    assert schedule(0, **kw) == 0.0
    assert schedule(50, **kw) == pytest.approx(5e-4)
    assert schedule(100, **kw) == pytest.approx(1e-3)
    assert schedule(400, **kw) == pytest.approx(0.0, abs=1e-15)
    assert schedule(250, **kw) == pytest.approx(5e-4)  # halfway down, for both shapes
    quarter_down = 7.5e-4 if schedule is triangle else 1e-3 * (1 + math.cos(math.pi / 4)) / 2
    assert schedule(175, **kw) == pytest.approx(quarter_down)
    with pytest.raises(ValueError, match=r"warmup_steps=400 must be in \[0, total_steps=400\)"):
        schedule(0, lr=1e-3, warmup_steps=400, total_steps=400)


def test_chunked_evaluation_pads_the_last_chunk_and_keeps_each_rows_prediction():
    model = build_model(ModelConfig(n_dims=4, n_points=8, n_layer=2, n_embd=32, n_head=2), seed=1).double()
    gen = torch.Generator().manual_seed(3)
    xs, ys = (
        torch.randn(11, 8, 4, generator=gen, dtype=torch.float64),
        torch.randn(11, 8, generator=gen, dtype=torch.float64),
    )
    shapes = []
    hook = model.register_forward_pre_hook(lambda module, args: shapes.append(len(args[0])))
    preds = transformer_predictions(model, EvalSet(xs.numpy(), None, ys.numpy()), device="cpu", chunk=4)
    hook.remove()
    assert shapes == [4, 4, 4] and preds.shape == (11, 8)  # 4 + 4 + 3 rows, the last padded to 4
    with torch.no_grad():
        np.testing.assert_allclose(preds, model(xs, ys).numpy(), rtol=1e-12, atol=1e-12)
    assert model.training  # put back in training mode
