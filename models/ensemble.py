"""S transformers of one architecture as one batched computation: a sweep's trainings packed together.

Every parameter of the single model (models/transformer.py) becomes a stack with a leading member axis
S, under the same name, so a stacked state_dict is `torch.stack` of the members' and member s's
weights are `[s]` of each entry. Each layer works per member (batched matmuls, LayerNorm and attention
with the members folded into the batch), so member s's predictions depend on its own weights and inputs
only. Trained on the sum of the members' losses, each member's gradient is that of its own loss, and
EnsembleAdamW keeps each member's Adam state and learning rate apart: an ensemble is S separate
trainings, up to the float32 round-off of batched against single kernels.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from models.optim import make_optimizer, param_groups
from models.tokens import X_TOKENS, causal_mask, context
from models.transformer import InContextRegressor, gelu


class StackedLinear(nn.Module):
    """S linear maps. Shapes: (S, ..., fan_in) -> (S, ..., fan_out)."""

    def __init__(self, members, fan_in, fan_out, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, fan_out, fan_in))
        self.bias = nn.Parameter(torch.empty(members, fan_out)) if bias else None

    def forward(self, h, outputs=slice(None)):
        """All outputs, or those of the slice `outputs` (of fan_out) only."""
        flat = h.reshape(h.shape[0], -1, h.shape[-1])  # (S, N, in)
        weight = self.weight[:, outputs].transpose(1, 2)  # (S, in, out)
        if self.bias is None:
            out = torch.bmm(flat, weight)
        else:
            out = torch.baddbmm(self.bias[:, None, outputs], flat, weight)
        return out.reshape(*h.shape[:-1], out.shape[-1])


class StackedLayerNorm(nn.Module):
    """S LayerNorms (eps 1e-5) over the last axis. Shapes: (S, ..., C) -> (S, ..., C)."""

    def __init__(self, members, width):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, width))
        self.bias = nn.Parameter(torch.empty(members, width))

    def forward(self, h):
        shape = (h.shape[0],) + (1,) * (h.ndim - 2) + (h.shape[-1],)
        return F.layer_norm(h, h.shape[-1:], eps=1e-5) * self.weight.view(shape) + self.bias.view(shape)


class StackedAttention(nn.Module):
    def __init__(self, members, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = StackedLinear(members, config.n_embd, 3 * config.n_embd)
        self.c_proj = StackedLinear(members, config.n_embd, config.n_embd)

    def forward(self, h, queries=None):
        """As the single model's CausalSelfAttention. Shapes: (S, B, T, C) -> (S, B, T or len(queries), C)."""
        members, batch, length, width = h.shape
        if queries is None:
            q, k, v = self.c_attn(h).split(width, dim=3)
            mask = None
        else:
            q = self.c_attn(h[:, :, queries], slice(None, width))
            k, v = self.c_attn(h, slice(width, None)).split(width, dim=3)
            mask = causal_mask(length, queries, h.device)
        # (S, B, T, C) -> (S B, heads, T, C / heads): the members are more batch to attention
        q, k, v = (t.reshape(members * batch, t.shape[2], self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.c_proj(out.transpose(1, 2).reshape(members, batch, q.shape[2], width))


class StackedMLP(nn.Module):
    def __init__(self, members, config):
        super().__init__()
        self.c_fc = StackedLinear(members, config.n_embd, 4 * config.n_embd)
        self.c_proj = StackedLinear(members, 4 * config.n_embd, config.n_embd)

    def forward(self, h):
        return self.c_proj(gelu(self.c_fc(h)))


class StackedBlock(nn.Module):
    def __init__(self, members, config):
        super().__init__()
        self.ln_1 = StackedLayerNorm(members, config.n_embd)
        self.attn = StackedAttention(members, config)
        self.ln_2 = StackedLayerNorm(members, config.n_embd)
        self.mlp = StackedMLP(members, config)

    def forward(self, h, queries=None):
        a = self.attn(self.ln_1(h), queries)
        h = (h if queries is None else h[:, :, queries]) + a
        return h + self.mlp(self.ln_2(h))


class EnsembleRegressor(nn.Module):
    """S in-context regressors of one ModelConfig. Shapes: xs (S, B, K, D), ys (S, B, K) -> (S, B, K)."""

    def __init__(self, config, members):
        super().__init__()
        self.config, self.members = config, members
        self.read_in = StackedLinear(members, config.n_dims + 1, config.n_embd, bias=False)
        self.wpe = nn.ParameterDict({"weight": nn.Parameter(torch.empty(members, 2 * config.n_points, config.n_embd))})
        self.blocks = nn.ModuleList(StackedBlock(members, config) for _ in range(config.n_layer))
        self.ln_f = StackedLayerNorm(members, config.n_embd)
        self.read_out = StackedLinear(members, config.n_embd, 1, bias=False)

    @classmethod
    def of(cls, models):
        """The ensemble of `models` (InContextRegressors of one config, on one device), weights copied."""
        config = models[0].config
        if any(m.config != config for m in models):
            raise ValueError(f"an ensemble needs one architecture, got {sorted({str(m.config) for m in models})}")
        like = next(models[0].parameters())
        with torch.device("meta"):
            ensemble = cls(config, len(models))
        ensemble.to_empty(device=like.device).to(like.dtype)
        states = [m.state_dict() for m in models]
        ensemble.load_state_dict({key: torch.stack([s[key] for s in states]) for key in states[0]})
        return ensemble

    def select(self, indices):
        """A new ensemble of the members at `indices` (weights copied), in that order."""
        return EnsembleRegressor.of([self.member(i) for i in indices])

    def member(self, index):
        """Member `index` as a stand-alone InContextRegressor (a copy of its weights, same device)."""
        like = self.read_in.weight
        with torch.device("meta"):
            model = InContextRegressor(self.config)
        model.to_empty(device=like.device).to(like.dtype)
        model.load_state_dict({key: value[index] for key, value in self.state_dict().items()})
        return model

    def forward(self, xs, ys):
        members, batch, n_points, n_dims = xs.shape
        if members != self.members or n_dims != self.config.n_dims or ys.shape != xs.shape[:3]:
            raise ValueError(
                f"expected xs ({self.members}, B, K, {self.config.n_dims}) and ys ({self.members}, B, K), "
                f"got {tuple(xs.shape)} and {tuple(ys.shape)}"
            )
        if n_points > self.config.n_points:
            raise ValueError(f"n_points={n_points} exceeds the model's context of {self.config.n_points} points")
        # The single model's tokens, members folded into the batch: (S B, 2K - 1, D + 1) -> (S, B, 2K - 1, D + 1)
        tokens = context(xs.reshape(-1, n_points, n_dims), ys.reshape(-1, n_points))
        tokens = tokens.reshape(members, batch, *tokens.shape[1:])
        h = self.read_in(tokens) + self.wpe["weight"][:, None, : tokens.shape[2]]
        for block in self.blocks[:-1]:
            h = block(h)
        h = self.blocks[-1](h, X_TOKENS)  # (S, B, K, C)
        return self.read_out(self.ln_f(h))[..., 0]


def decayed_names(config):
    """Names of the parameters weight decay applies to: those of the single model's decayed group."""
    with torch.device("meta"):
        model = InContextRegressor(config)
    decayed = {id(p) for p in param_groups(model, 1.0)[0]["params"]}
    return {name for name, p in model.named_parameters() if id(p) in decayed}


class EnsembleAdamW:
    """AdamW (0.9, 0.999, eps 1e-8; torch's update, written out) on an EnsembleRegressor, with a learning
    rate and a weight decay per member; decay only on the single model's decayed group (models/optim.py).

    Its state converts both ways with the single training's optimiser (torch AdamW from make_optimizer):
    `of` continues the members' optimisers (fresh or restored from their checkpoints), and
    `member_optimizer` gives member k's state as one, so an ensemble's checkpoints are single trainings'.
    """

    def __init__(self, ensemble, weight_decay, betas=(0.9, 0.999), eps=1e-8, state=None, step_count=0):
        like = ensemble.read_in.weight
        self.ensemble, self.betas, self.eps, self.step_count = ensemble, betas, eps, step_count
        self.decays = [float(w) for w in weight_decay]
        self.weight_decay = torch.tensor(self.decays, dtype=like.dtype, device=like.device)
        # {parameter name: (exp_avg, exp_avg_sq)}, zero for a fresh optimiser
        self.state = state or {
            name: (torch.zeros_like(p), torch.zeros_like(p)) for name, p in ensemble.named_parameters()
        }
        # What every step walks, found once: each parameter with its moments, whether it decays, and the
        # shape that broadcasts one value per member over it.
        decayed = decayed_names(ensemble.config)
        self.updates = [
            (p, *self.state[name], name in decayed, (-1,) + (1,) * (p.ndim - 1))
            for name, p in ensemble.named_parameters()
        ]

    @classmethod
    def of(cls, ensemble, models, optimizers):
        """The optimiser of `ensemble` (made by EnsembleRegressor.of(models)) that continues each member's
        torch AdamW in `optimizers` (made by make_optimizer for models[k]; all fresh, or all restored
        at one step)."""
        decays = [optimizer.param_groups[0]["weight_decay"] for optimizer in optimizers]
        states = [_named_state(model, optimizer) for model, optimizer in zip(models, optimizers, strict=True)]
        steps = {step for step, _ in states}
        if len(steps) > 1:
            raise ValueError(f"an ensemble's members continue from one step, got steps {sorted(steps)}")
        step_count = steps.pop()
        if not step_count:
            return cls(ensemble, decays)
        names = [name for name, _ in ensemble.named_parameters()]
        state = {
            name: tuple(torch.stack([moments[name][j] for _, moments in states]) for j in (0, 1)) for name in names
        }
        return cls(ensemble, decays, state=state, step_count=step_count)

    def member_optimizer(self, index, model, lr):
        """Member `index`'s state as the torch AdamW a single training of `model` (that member's weights,
        EnsembleRegressor.member) would hold: a checkpoint of it resumes alone or in an ensemble."""
        optimizer = make_optimizer(model, lr=lr, weight_decay=self.decays[index])
        if self.step_count:
            fused = optimizer.defaults.get("fused") or optimizer.defaults.get("capturable")
            device = self.weight_decay.device if fused else "cpu"  # where torch's AdamW keeps its step count
            step = torch.tensor(float(self.step_count), dtype=torch.float32, device=device)
            for name, p in model.named_parameters():
                exp_avg, exp_avg_sq = self.state[name]
                optimizer.state[p] = {
                    "step": step.clone(),
                    "exp_avg": exp_avg[index].clone(),
                    "exp_avg_sq": exp_avg_sq[index].clone(),
                }
        return optimizer

    def select(self, ensemble, indices):
        """This optimiser's state for the members at `indices`, driving `ensemble` (made by that selection)."""
        index = torch.as_tensor(indices, device=self.weight_decay.device)
        state = {name: (m[index].clone(), v[index].clone()) for name, (m, v) in self.state.items()}
        decays = [self.decays[i] for i in indices]
        return EnsembleAdamW(ensemble, decays, self.betas, self.eps, state=state, step_count=self.step_count)

    def zero_grad(self):
        """Forget the members' gradients (set to None, as torch optimisers do)."""
        for p, *_ in self.updates:
            p.grad = None

    @torch.no_grad()
    def step(self, lr):
        """One update with `lr`, a (S,) tensor of each member's learning rate at this step."""
        beta1, beta2 = self.betas
        self.step_count += 1
        correction1, correction2 = 1 - beta1**self.step_count, math.sqrt(1 - beta2**self.step_count)
        decay, step_size = 1 - lr * self.weight_decay, lr / correction1  # (S,): once per step
        for p, exp_avg, exp_avg_sq, decays, shape in self.updates:
            if decays:
                p.mul_(decay.view(shape))
            exp_avg.lerp_(p.grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = exp_avg_sq.sqrt().div_(correction2).add_(self.eps)
            p.sub_((step_size.view(shape) * exp_avg).div_(denom))


def _named_state(model, optimizer):
    """(updates done, {parameter name: (exp_avg, exp_avg_sq)}) of a torch AdamW over `model`'s parameters."""
    names = {id(p): name for name, p in model.named_parameters()}
    state = {names[id(p)]: s for p, s in optimizer.state.items() if s}
    if not state:
        return 0, {}
    steps = {int(s["step"]) for s in state.values()}
    if len(steps) > 1 or len(state) != len(names):
        raise ValueError(
            f"an optimiser whose parameters are at different steps ({sorted(steps)}) cannot join an ensemble"
        )
    return steps.pop(), {name: (s["exp_avg"], s["exp_avg_sq"]) for name, s in state.items()}


def ensemble_step(ensemble, optimizer, xs, ys, lr):
    """One step of every member on the MSE of its own batch. Shapes: xs (S, B, K, D), ys (S, B, K), lr (S,).
    Returns each member's batch loss, (S,), detached."""
    losses = ((ensemble(xs, ys) - ys) ** 2).mean(dim=(1, 2))
    optimizer.zero_grad()
    losses.sum().backward()  # member s's gradient is that of its own loss: the terms share no parameter
    optimizer.step(lr)
    return losses.detach()
