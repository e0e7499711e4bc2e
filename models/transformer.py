"""The paper's in-context regression transformer: a GPT-2 style pre-LN decoder (nanoGPT layout).

Tokens (models/tokens.py) -> bias-free linear read-in D+1 -> n_embd, plus learned positions ->
n_layer blocks [LN -> causal multi-head attention -> residual; LN -> MLP(4 n_embd, tanh GELU) ->
residual] -> final LN -> bias-free linear read-out n_embd -> 1 at the x tokens. Dropout 0, LN eps
1e-5. Initialisation N(0, 0.02), residual output projections N(0, 0.02 / sqrt(2 n_layer)), biases 0,
LayerNorm weights 1: drawn from an explicit generator, so the same seed gives the same weights.

Only what reaches a prediction is computed: y_K, which no x token attends to, is left out
(models/tokens.py `context`), and the last block computes its queries, MLP and output at the x tokens
only, with keys and values at every token. The same function as the whole network read at the x tokens
(tests/test_models.py), with fewer products.
"""

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from models.tokens import X_TOKENS, causal_mask, context

SIZES = {"small": (4, 64, 2), "base": (8, 128, 2), "large": (12, 256, 4)}  # n_layer, n_embd, n_head


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape of the transformer. n_points is K, the context length it can read (2K positions).
    No defaults here: the caller's settings (or `of_size`) give every value."""

    n_dims: int
    n_points: int
    n_layer: int
    n_embd: int
    n_head: int

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field.name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")

    @classmethod
    def of_size(cls, size, *, n_dims, n_points):
        if size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
        n_layer, n_embd, n_head = SIZES[size]
        return cls(n_dims, n_points, n_layer, n_embd, n_head)


# tanh GELU, 0.5 x (1 + tanh(z)) with z = sqrt(2 / pi) (x + 0.044715 x^3), is x sigmoid(2 z): the same
# function, and torch's float32 sigmoid is about 3.5x faster than its tanh on a CPU. Measured in one run,
# alternating: torch's GELU 2.0 ns per element, this one 1.0-1.3 (before its first pass became one
# addcmul, which took off another ~15%); GELU was 20% of an evaluation of the base model.
GELU_SCALE, GELU_CUBIC = 2.0 * math.sqrt(2.0 / math.pi), 0.044715


class TanhGelu(torch.autograd.Function):
    """tanh GELU (GPT-2's), computed as x sigmoid(2 z); its gradient is torch's own tanh-GELU backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        # 2 z = x (GELU_SCALE + GELU_SCALE GELU_CUBIC x^2), in place after one pass that allocates
        z = torch.addcmul(x.new_full((), GELU_SCALE), x, x, value=GELU_SCALE * GELU_CUBIC)
        return z.mul_(x).sigmoid_().mul_(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.ops.aten.gelu_backward(grad, x, approximate="tanh")


def gelu(x):
    """F.gelu(x, approximate="tanh") to float round-off (tests/test_models.py), faster on a CPU."""
    return TanhGelu.apply(x)


class Linear(nn.Linear):
    """nn.Linear, or with `members` S linear maps with a leading member axis: (S, ..., in) -> (S, ..., out).
    `outputs`, a slice of fan_out (None: all), computes those outputs only."""

    def __init__(self, fan_in, fan_out, bias=True, members=None):
        super().__init__(fan_in, fan_out, bias=bias, device="meta" if members else None)
        if members:  # the same attributes, the weights stacked
            self.weight = nn.Parameter(torch.empty(members, fan_out, fan_in))
            self.bias = nn.Parameter(torch.empty(members, fan_out)) if bias else None

    def forward(self, h, outputs=None):
        weight, bias = self.weight, self.bias
        if outputs is not None:
            weight, bias = weight[..., outputs, :], None if bias is None else bias[..., outputs]
        if weight.ndim == 2:
            return F.linear(h, weight, bias)
        flat = h.reshape(h.shape[0], -1, h.shape[-1])  # (S, N, in)
        out = (
            torch.bmm(flat, weight.transpose(1, 2))
            if bias is None
            else torch.baddbmm(bias[:, None], flat, weight.transpose(1, 2))
        )
        return out.reshape(*h.shape[:-1], out.shape[-1])


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the last axis (eps 1e-5), or with `members` S of them: (S, ..., C) -> (S, ..., C)."""

    def __init__(self, width, members=None):
        super().__init__(width, eps=1e-5, device="meta" if members else None)
        if members:  # the same attributes, the weights stacked
            self.weight = nn.Parameter(torch.empty(members, width))
            self.bias = nn.Parameter(torch.empty(members, width))

    def forward(self, h):
        if self.weight.ndim == 1:
            return F.layer_norm(h, self.normalized_shape, self.weight, self.bias, self.eps)
        shape = (h.shape[0],) + (1,) * (h.ndim - 2) + (h.shape[-1],)
        return F.layer_norm(h, self.normalized_shape, eps=self.eps) * self.weight.view(shape) + self.bias.view(shape)


class Positions(nn.Embedding):
    """Learned positions: `weight` (length, C), or (S, length, C) with `members`; read whole, not looked up."""

    def __init__(self, length, width, members=None):
        super().__init__(length, width, device="meta" if members else None)
        if members:  # the same attributes, the weights stacked
            self.weight = nn.Parameter(torch.empty(members, length, width))

    def forward(self, length):
        """The first `length` positions, shaped to add to (B, T, C), or (S, B, T, C) with members."""
        return self.weight[..., None, :length, :]


class CausalSelfAttention(nn.Module):
    def __init__(self, config, members=None):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, members=members)
        self.c_proj = Linear(config.n_embd, config.n_embd, members=members)

    def forward(self, h, queries=None):
        """Causal attention at every token, or at the tokens of the slice `queries` only (each still
        attending to every token up to its own). Shapes: (..., T, C) -> (..., T or len(queries), C), the
        leading axes (batch; members and batch) folded into attention's batch."""
        *lead, length, width = h.shape
        if queries is None:
            q, k, v = self.c_attn(h).split(width, dim=-1)
            mask = None
        else:
            q = self.c_attn(h[..., queries, :], slice(None, width))
            k, v = self.c_attn(h, slice(width, None)).split(width, dim=-1)
            mask = causal_mask(length, queries, h.device)
        # (..., T, C) -> (N, heads, T, C / heads)
        q, k, v = (t.reshape(-1, t.shape[-2], self.n_head, width // self.n_head).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.c_proj(out.transpose(1, 2).reshape(*lead, q.shape[2], width))


class MLP(nn.Module):
    def __init__(self, config, members=None):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, members=members)
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, members=members)

    def forward(self, h):
        return self.c_proj(gelu(self.c_fc(h)))


class Block(nn.Module):
    def __init__(self, config, members=None):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, members)
        self.attn = CausalSelfAttention(config, members)
        self.ln_2 = LayerNorm(config.n_embd, members)
        self.mlp = MLP(config, members)

    def forward(self, h, queries=None):
        """The block at every token, or at the tokens of the slice `queries` only."""
        a = self.attn(self.ln_1(h), queries)
        h = (h if queries is None else h[..., queries, :]) + a
        return h + self.mlp(self.ln_2(h))


class InContextRegressor(nn.Module):
    """Predicts every y_k from x_1, y_1, ..., x_k. Shapes: xs (B, K, D), ys (B, K) -> (B, K).

    With `members`, S regressors of one config whose every weight has a leading member axis (a stacked
    state_dict, `torch.stack` of the members'): xs (S, B, K, D), ys (S, B, K) -> (S, B, K), member s's
    predictions computed from its own weights and inputs only (models/ensemble.py)."""

    def __init__(self, config, members=None):
        super().__init__()
        self.config, self.members = config, members
        self.read_in = Linear(config.n_dims + 1, config.n_embd, bias=False, members=members)
        self.wpe = Positions(2 * config.n_points, config.n_embd, members)
        self.blocks = nn.ModuleList(Block(config, members) for _ in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd, members)
        self.read_out = Linear(config.n_embd, 1, bias=False, members=members)

    def forward(self, xs, ys):
        n_dims, n_points = self.config.n_dims, self.config.n_points
        lead = () if self.members is None else (self.members,)
        if xs.ndim != 3 + len(lead) or xs.shape[:-3] != lead or xs.shape[-1] != n_dims or ys.shape != xs.shape[:-1]:
            expected = ", ".join(map(str, (*lead, "B", "K")))
            raise ValueError(
                f"expected xs ({expected}, {n_dims}) and ys ({expected}), got {tuple(xs.shape)} and {tuple(ys.shape)}"
            )
        if xs.shape[-2] > n_points:
            raise ValueError(f"n_points={xs.shape[-2]} exceeds the model's context of {n_points} points")
        tokens = context(xs.reshape(-1, *xs.shape[-2:]), ys.reshape(-1, ys.shape[-1]))
        tokens = tokens.reshape(*xs.shape[:-2], *tokens.shape[1:])
        h = self.read_in(tokens) + self.wpe(tokens.shape[-2])
        for block in self.blocks[:-1]:
            h = block(h)
        h = self.blocks[-1](h, X_TOKENS)
        return self.read_out(self.ln_f(h))[..., 0]


def build_model(config, *, seed, device="cpu"):
    """The transformer with weights drawn from the init stream of `seed` (identical on every device)."""
    with torch.device("meta"):
        model = InContextRegressor(config)
    # Materialise without the default initialisers, which would draw from the global RNG.
    model.to_empty(device="cpu")
    # The init stream is the only draw made from the model seed, so a plain seeded generator cannot
    # collide with another stream.
    _initialise(model, torch.Generator().manual_seed(seed))
    return model.to(device)


def _initialise(model, generator):
    """Set every parameter from `generator`, deciding each by module type, and check none is missed."""
    done = set()
    residual_std = 0.02 / math.sqrt(2 * model.config.n_layer)
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            # Projections that write into the residual stream are scaled down with depth (GPT-2).
            std = residual_std if isinstance(module, nn.Linear) and _writes_residual(model, module) else 0.02
            nn.init.normal_(module.weight, 0.0, std, generator=generator)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        else:
            continue
        done.update(id(p) for p in module.parameters(recurse=False))
    missed = [name for name, p in model.named_parameters() if id(p) not in done]
    assert not missed, f"parameters left uninitialised: {missed}"


def _writes_residual(model, linear):
    return any(linear is block.attn.c_proj or linear is block.mlp.c_proj for block in model.blocks)
