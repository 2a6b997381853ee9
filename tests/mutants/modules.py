"""Mutants of modules clauses (MODULE-N, specs/modules.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import weakref

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


def _eval_forward_runs_under_no_grad(mp):
    original = torch.nn.Module.__call__

    def call(self, *args, **kwargs):
        if self.training:
            return original(self, *args, **kwargs)
        with torch.no_grad():
            return original(self, *args, **kwargs)

    mp.setattr(torch.nn.Module, "__call__", call)


def _dropout_active_in_eval(mp):
    original = _F.dropout

    def dropout(input, p=0.5, training=True, inplace=False):
        return original(input, p, True, inplace)

    mp.setattr(_F, "dropout", dropout)


def _dropout_does_not_rescale(mp):
    original = _F.dropout

    def dropout(input, p=0.5, training=True, inplace=False):
        out = original(input, p, training, inplace)
        return out * (1 - p) if training and 0 < p < 1 else out

    mp.setattr(_F, "dropout", dropout)


def _dropout3d_unbatched_drops_slices(mp):
    original = _F.dropout3d

    def dropout3d(input, p=0.5, training=True, inplace=False):
        if input.dim() == 4:  # (C, D, H, W) taken for (N, C, H, W): each (c, d) slice dropped on its own
            return torch.feature_dropout_(input, p, training) if inplace else torch.feature_dropout(input, p, training)
        return original(input, p, training, inplace)

    mp.setattr(_F, "dropout3d", dropout3d)


def _channel_dims(input):
    return [d for d in range(input.dim()) if d != 1]


def _batchnorm_running_var_biased(mp):
    original = _F.batch_norm

    def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
        before = running_var.clone() if training and running_var is not None else None
        out = original(input, running_mean, running_var, weight, bias, training, momentum, eps)
        if before is not None:
            with torch.no_grad():
                running_var.copy_((1 - momentum) * before + momentum * input.detach().var(_channel_dims(input), unbiased=False))
        return out

    mp.setattr(_F, "batch_norm", batch_norm)


def _batchnorm_eval_updates_running_stats(mp):
    original = _F.batch_norm

    def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
        out = original(input, running_mean, running_var, weight, bias, training, momentum, eps)
        if not training and running_mean is not None:
            with torch.no_grad():
                m = 0.1 if momentum is None else momentum
                running_mean.mul_(1 - m).add_(m * input.detach().mean(_channel_dims(input)))
        return out

    mp.setattr(_F, "batch_norm", batch_norm)


def _parameter_requires_grad_false_ignored(mp):
    original = torch.Tensor.requires_grad_

    def requires_grad_(self, requires_grad=True):
        return self if not requires_grad else original(self, requires_grad)

    mp.setattr(torch.nn.Parameter, "requires_grad_", requires_grad_)


def _adamw_decays_parameters_without_grad(mp):
    original = torch.optim.AdamW.step

    def step(self, closure=None):
        with torch.no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    if param.grad is None:
                        param.mul_(1 - group["lr"] * group["weight_decay"])
        return original(self, closure)

    mp.setattr(torch.optim.AdamW, "step", step)


def _sgd_skips_zero_grads(mp):
    original = torch.optim.SGD.step

    def step(self, closure=None):
        hidden = []
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None and not bool(param.grad.any()):
                    hidden.append((param, param.grad))
                    param.grad = None
        try:
            return original(self, closure)
        finally:
            for param, grad in hidden:
                param.grad = grad

    mp.setattr(torch.optim.SGD, "step", step)


def _optimizer_adopts_the_whole_module(mp):
    last_module = {}
    named_parameters = torch.nn.Module.named_parameters
    init = torch.optim.Optimizer.__init__

    def remembering(self, *args, **kwargs):
        last_module["ref"] = weakref.ref(self)
        return named_parameters(self, *args, **kwargs)

    def adopting(self, params, defaults):
        init(self, params, defaults)
        module = last_module.get("ref", lambda: None)()
        if module is None:
            return
        held = [p for group in self.param_groups for p in group["params"]]
        everything = [p for _, p in named_parameters(module)]
        missing = [p for p in everything if not any(p is h for h in held)]
        if missing and any(p is h for p in everything for h in held):
            self.add_param_group({"params": missing})

    mp.setattr(torch.nn.Module, "named_parameters", remembering)
    mp.setattr(torch.optim.Optimizer, "__init__", adopting)


def _sgd_maximizes_by_default(mp):
    original = torch.optim.SGD.__init__

    def init(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=True, **kwargs):
        original(self, params, lr, momentum, dampening, weight_decay, nesterov, maximize=maximize, **kwargs)

    mp.setattr(torch.optim.SGD, "__init__", init)


def _sgd_step_ignores_closure(mp):
    original = torch.optim.SGD.step
    mp.setattr(torch.optim.SGD, "step", lambda self, closure=None: original(self))


def _zero_grad_ignores_set_to_none_false(mp):
    original = torch.optim.Optimizer.zero_grad
    mp.setattr(torch.optim.Optimizer, "zero_grad", lambda self, set_to_none=True: original(self, True))


def _mse_sum_is_mean(mp):
    original = _F.mse_loss

    def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", **kwargs):
        return original(input, target, size_average, reduce, "mean" if reduction == "sum" else reduction, **kwargs)

    mp.setattr(_F, "mse_loss", mse_loss)


def _named_parameters_keeps_duplicates(mp):
    original = torch.nn.Module.named_parameters
    mp.setattr(torch.nn.Module, "named_parameters", lambda self, prefix="", recurse=True, remove_duplicate=False: original(self, prefix, recurse, remove_duplicate))


MUTANTS = (
    Mutant("train_does_not_recurse", ("MODULE-1",), "Module.train()/eval() set .training on the module itself only, not its children", _train_does_not_recurse),
    Mutant("eval_freezes_parameters", ("MODULE-2", "SAVED-7"), "Module.train(mode) also sets requires_grad=mode on every parameter", _eval_freezes_parameters),
    Mutant(
        "eval_forward_runs_under_no_grad",
        ("MODULE-2", "SAVED-7"),
        "a module in evaluation mode runs its forward under torch.no_grad() (eval() used as a grad-mode switch)",
        _eval_forward_runs_under_no_grad,
    ),
    Mutant("dropout_active_in_eval", ("MODULE-3",), "F.dropout ignores training=False: nn.Dropout keeps dropping in evaluation mode", _dropout_active_in_eval),
    Mutant("dropout_does_not_rescale", ("MODULE-4",), "F.dropout in training mode zeroes elements but does not scale the kept ones by 1/(1-p)", _dropout_does_not_rescale),
    Mutant(
        "dropout3d_unbatched_drops_slices",
        ("MODULE-4",),
        "nn.Dropout3d on an unbatched (C, D, H, W) input takes it for a batch and drops each (c, d) slice on its own "
        "instead of whole channels (torch 1.10, where Dropout2d and Dropout3d assumed a batch dimension)",
        _dropout3d_unbatched_drops_slices,
        regression="https://github.com/pytorch/pytorch/issues/69801",
    ),
    Mutant(
        "batchnorm_running_var_biased",
        ("MODULE-5",),
        "BatchNorm in training mode updates running_var with the biased batch variance instead of the unbiased one",
        _batchnorm_running_var_biased,
    ),
    Mutant(
        "batchnorm_eval_updates_running_stats",
        ("MODULE-6",),
        "BatchNorm in evaluation mode normalises with the running statistics but still moves running_mean towards the batch mean",
        _batchnorm_eval_updates_running_stats,
    ),
    Mutant(
        "parameter_requires_grad_false_ignored",
        ("MODULE-7",),
        "Parameter.requires_grad_(False) does nothing (the attribute form still freezes)",
        _parameter_requires_grad_false_ignored,
    ),
    Mutant(
        "adamw_decays_parameters_without_grad",
        ("MODULE-8",),
        "AdamW.step() applies its decoupled weight decay to parameters whose .grad is None",
        _adamw_decays_parameters_without_grad,
    ),
    Mutant("sgd_skips_zero_grads", ("MODULE-9",), "SGD.step() skips a parameter whose .grad is all zeros, as if it were None", _sgd_skips_zero_grads),
    Mutant(
        "optimizer_adopts_the_whole_module",
        ("MODULE-10",),
        "an optimizer built over some of a module's parameters also steps the module's other parameters",
        _optimizer_adopts_the_whole_module,
    ),
    Mutant("sgd_maximizes_by_default", ("MODULE-11", "MODULE-12"), "torch.optim.SGD defaults to maximize=True: step() adds lr * grad", _sgd_maximizes_by_default),
    Mutant("sgd_step_ignores_closure", ("MODULE-11",), "SGD.step(closure) never calls the closure: it steps with whatever .grad holds", _sgd_step_ignores_closure),
    Mutant(
        "zero_grad_ignores_set_to_none_false",
        ("MODULE-13",),
        "optimizer.zero_grad(set_to_none=False) sets the gradients to None instead of zeroing them",
        _zero_grad_ignores_set_to_none_false,
    ),
    Mutant("mse_sum_is_mean", ("MODULE-14",), "F.mse_loss(reduction='sum') averages instead of summing", _mse_sum_is_mean),
    Mutant(
        "named_parameters_keeps_duplicates",
        ("MODULE-15",),
        "Module.named_parameters() defaults to remove_duplicate=False: a shared parameter is listed once per name",
        _named_parameters_keeps_duplicates,
    ),
)
