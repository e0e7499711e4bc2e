"""S transformers of one architecture computed as one: a sweep's trainings packed together.

An Ensemble holds the members themselves (InContextRegressors of one config, each with its own torch
AdamW): nothing of a member is copied or converted. Its forward stacks the members' weights along a
leading member axis and runs them through the transformer's own layers, built with `members`
(models/transformer.py: batched matmuls, LayerNorm and attention with the members folded into the
batch), so member s's predictions depend on its own weights and inputs only. The stacking is part of the
graph: the backward of the sum of the members' losses gives each member's own parameters the gradient of
its own loss, and each member's optimiser steps it as in a single training. An ensemble is S separate
trainings, up to the float32 round-off of batched against single kernels.
"""

import torch
from torch import nn
from torch.func import functional_call

from models.transformer import InContextRegressor


class Ensemble(nn.Module):
    """The members' (InContextRegressors of one config, on one device) predictions as one computation.
    Shapes: xs (S, B, K, D), ys (S, B, K) -> (S, B, K). Its parameters are the members'. One thread at a
    time: the forward lends the stacked weights to one module."""

    def __init__(self, models):
        super().__init__()
        config = models[0].config
        if any(m.config != config or m.members is not None for m in models):
            found = sorted({f"{m.config} x {m.members or 1}" for m in models})
            raise ValueError(f"an ensemble needs single models of one architecture, got {found}")
        places = {(p.device, p.dtype) for m in models for p in m.parameters()}
        if len(places) > 1:
            raise ValueError(f"an ensemble's members live on one device in one dtype, got {sorted(map(str, places))}")
        self.members = nn.ModuleList(models)
        self.names = [name for name, _ in models[0].named_parameters()]
        with torch.device("meta"):  # the layers' code with a member axis; its weights are the stacked members'
            self.__dict__["stacked"] = InContextRegressor(config, members=len(models))

    def forward(self, xs, ys):
        weights = zip(self.names, *(member.parameters() for member in self.members), strict=True)
        return functional_call(self.stacked, {name: torch.stack(members) for name, *members in weights}, (xs, ys))
