"""The paper's in-context regression transformer: a GPT-2 style pre-LN decoder (nanoGPT layout).

Tokens (models/tokens.py) -> bias-free linear read-in D+1 -> n_embd, plus learned positions ->
n_layer blocks [LN -> causal multi-head attention -> residual; LN -> MLP(4 n_embd, tanh GELU) ->
residual] -> final LN -> bias-free linear read-out n_embd -> 1 at the x tokens. Dropout 0, LN eps
1e-5. Initialisation N(0, 0.02), residual output projections N(0, 0.02 / sqrt(2 n_layer)), biases 0,
LayerNorm weights 1: drawn from an explicit generator, so the same seed gives the same weights.
"""

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from models.tokens import at_x_tokens, to_tokens

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


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, h):
        batch, length, width = h.shape
        q, k, v = self.c_attn(h).split(width, dim=2)
        # (B, T, C) -> (B, heads, T, C / heads)
        q, k, v = (t.view(batch, length, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(out.transpose(1, 2).reshape(batch, length, width))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, h):
        return self.c_proj(F.gelu(self.c_fc(h), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=1e-5)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=1e-5)
        self.mlp = MLP(config)

    def forward(self, h):
        h = h + self.attn(self.ln_1(h))
        return h + self.mlp(self.ln_2(h))


class InContextRegressor(nn.Module):
    """Predicts every y_k from x_1, y_1, ..., x_k. Shapes: xs (B, K, D), ys (B, K) -> (B, K)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.read_in = nn.Linear(config.n_dims + 1, config.n_embd, bias=False)
        self.wpe = nn.Embedding(2 * config.n_points, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=1e-5)
        self.read_out = nn.Linear(config.n_embd, 1, bias=False)

    def forward(self, xs, ys):
        n_dims, n_points = self.config.n_dims, self.config.n_points
        if xs.ndim != 3 or xs.shape[2] != n_dims or ys.shape != xs.shape[:2]:
            raise ValueError(f"expected xs (B, K, {n_dims}) and ys (B, K), got {tuple(xs.shape)} and {tuple(ys.shape)}")
        if xs.shape[1] > n_points:
            raise ValueError(f"n_points={xs.shape[1]} exceeds the model's context of {n_points} points")
        tokens = to_tokens(xs, ys)
        h = self.read_in(tokens) + self.wpe.weight[: tokens.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.read_out(at_x_tokens(self.ln_f(h)))[..., 0]


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
