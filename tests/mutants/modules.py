"""Mutants of modules clauses (MODULE-N, specs/modules.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant

_F = torch.nn.functional


def _train_does_not_recurse(mp):
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode  # the children keep their mode
        return self

    mp.setattr(torch.nn.Module, "train", train)


def _eval_freezes_parameters(mp):
    original = torch.nn.Module.train

    def train(self, mode=True):
        for param in self.parameters():
            param.requires_grad_(mode)
        return original(self, mode)

    mp.setattr(torch.nn.Module, "train", train)


def _mse_sum_is_mean(mp):
    original = _F.mse_loss

    def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", **kwargs):
        return original(input, target, size_average, reduce, "mean" if reduction == "sum" else reduction, **kwargs)

    mp.setattr(_F, "mse_loss", mse_loss)


MUTANTS = (
    Mutant("train_does_not_recurse", ("MODULE-1",), "Module.train()/eval() set .training on the module itself only, not its children", _train_does_not_recurse),
    Mutant("eval_freezes_parameters", ("MODULE-2", "SAVED-7"), "Module.train(mode) also sets requires_grad=mode on every parameter", _eval_freezes_parameters),
    Mutant("mse_sum_is_mean", ("MODULE-14",), "F.mse_loss(reduction='sum') averages instead of summing", _mse_sum_is_mean),
)
