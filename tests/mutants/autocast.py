"""Mutants of the autocast clauses (specs/autocast.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.mutants.base import Mutant

LOW = torch.bfloat16


def _autocast_on(t: torch.Tensor) -> bool:
    return torch.is_autocast_enabled(t.device.type)


def _patch_autocast_ops(mp, wrap) -> None:
    """Replace the ops the autocast tests use (matmul, mm, linear and the @ operator) by ``wrap(original)``."""
    for target, name in ((torch, "matmul"), (torch, "mm"), (F, "linear"), (torch.Tensor, "matmul"), (torch.Tensor, "__matmul__")):
        mp.setattr(target, name, wrap(getattr(target, name)))


class _Float32Backward(torch.autograd.Function):
    """An autocast op whose forward runs in bfloat16 but whose backward recomputes it in float32 from the
    float32 operands it saved."""

    @staticmethod
    def forward(ctx, a, b, fn):
        ctx.save_for_backward(a, b)
        ctx.fn = fn
        return fn(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        with torch.enable_grad(), torch.autocast(a.device.type, enabled=False):
            a_, b_ = a.detach().requires_grad_(), b.detach().requires_grad_()
            grads = torch.autograd.grad(ctx.fn(a_, b_), (a_, b_), g.float())
        return grads[0], grads[1], None


def _autocast_backward_in_float32(mp):
    def wrap(original):
        def op(a, b, *args, **kwargs):
            if _autocast_on(a) and not args and not kwargs and a.dtype == b.dtype == torch.float32:
                return _Float32Backward.apply(a, b, original)
            return original(a, b, *args, **kwargs)

        return op

    _patch_autocast_ops(mp, wrap)


_STATE: dict = {"region": False}


def _float32_leaf_gradients_in_autocast_dtype(mp):
    original_enter, original_grad = torch.autocast.__enter__, torch.autograd.grad

    def enter(self):
        if getattr(self, "_enabled", True):
            _STATE["region"] = True
        return original_enter(self)

    def grad(outputs, inputs, *args, **kwargs):
        result = original_grad(outputs, inputs, *args, **kwargs)
        if not _STATE["region"]:
            return result
        _STATE["region"] = False
        return tuple(g.to(LOW) if g is not None and g.dtype == torch.float32 else g for g in result)

    mp.setattr(torch.autocast, "__enter__", enter)
    mp.setattr(torch.autograd, "grad", grad)


def _autocast_caches_casts_made_under_no_grad(mp):
    """pytorch#112583 (torch < 2.13): autocast caches the bfloat16 cast of a float32 leaf that requires grad;
    a cast made under no_grad has no graph, and the ops after the no_grad block in the same region reuse it."""
    cache: dict = {}
    depth = [0]
    original_enter, original_exit = torch.autocast.__enter__, torch.autocast.__exit__

    def enter(self):
        depth[0] += 1
        return original_enter(self)

    def exit_(self, *exc):
        depth[0] -= 1
        if depth[0] == 0:
            cache.clear()
        return original_exit(self, *exc)

    def cached_cast(t):
        if not (t.is_leaf and t.requires_grad and t.dtype == torch.float32):
            return t
        if id(t) not in cache:
            cache[id(t)] = (t, t.to(LOW))  # the tensor itself too: its id stays valid while the entry lives
        return cache[id(t)][1]

    def wrap(original):
        def op(a, b, *args, **kwargs):
            if _autocast_on(a) and not args and not kwargs:
                return original(cached_cast(a), cached_cast(b))
            return original(a, b, *args, **kwargs)

        return op

    mp.setattr(torch.autocast, "__enter__", enter)
    mp.setattr(torch.autocast, "__exit__", exit_)
    _patch_autocast_ops(mp, wrap)


def _autocast_decorator_is_a_no_op(mp):
    mp.setattr(torch.autocast, "__call__", lambda self, func: func)


def _nested_disabled_region_ignored(mp):
    """torch.autocast(..., enabled=False) inside an enabled region leaves autocast on."""
    original_enter, original_exit = torch.autocast.__enter__, torch.autocast.__exit__

    def enter(self):
        self._mutant_skipped = not getattr(self, "_enabled", True) and torch.is_autocast_enabled(self.device)
        return self if self._mutant_skipped else original_enter(self)

    def exit_(self, *exc):
        return False if getattr(self, "_mutant_skipped", False) else original_exit(self, *exc)

    mp.setattr(torch.autocast, "__enter__", enter)
    mp.setattr(torch.autocast, "__exit__", exit_)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "autocast_backward_in_float32",
        ("AMP-1",),
        "the backward of an autocast op (mm, matmul, linear, @) recomputes it in float32 from the float32 operands instead of running in bfloat16",
        _autocast_backward_in_float32,
    ),
    Mutant(
        "float32_leaf_gradients_in_autocast_dtype",
        ("AMP-2",),
        "after an autocast region, torch.autograd.grad returns the gradients of float32 leaves in bfloat16",
        _float32_leaf_gradients_in_autocast_dtype,
    ),
    Mutant(
        "autocast_caches_casts_made_under_no_grad",
        ("AMP-3",),
        "autocast caches the bfloat16 cast of a float32 leaf made under no_grad and reuses it after the no_grad block, so later ops in the region lose the leaf's graph (torch < 2.13)",
        _autocast_caches_casts_made_under_no_grad,
        regression="https://github.com/pytorch/pytorch/issues/112583",
    ),
    Mutant(
        "autocast_decorator_is_a_no_op",
        ("AMP-4",),
        "@torch.autocast(...) returns the decorated function unchanged: its ops run in float32",
        _autocast_decorator_is_a_no_op,
    ),
    Mutant(
        "nested_disabled_region_ignored",
        ("AMP-5",),
        "a torch.autocast(..., enabled=False) block nested in an autocast region leaves autocast on: its ops still run in bfloat16",
        _nested_disabled_region_ignored,
    ),
)
