"""Mutants of the nondiff clauses (specs/nondiff.md): each breaks one behaviour the way a regression would.

Each replaces torch ops (the ``torch.*`` function, the ``Tensor`` method, the ``torch.nn.functional`` function the
``nn`` modules call) by a custom ``autograd.Function`` whose forward is the real op and whose backward (or
forward-mode rule) makes another choice at the non-differentiable points: a tie sent to one element, a bound
included or excluded, a finite value where the limit is infinite.  Unless a mutant is about forward mode, its
``jvp`` makes the same choice as its backward, so it breaks the gradient clauses and not NONDIFF-8.
``NEEDS_TORCH_2_14`` breaks NONDIFF-7, whose tests skip before torch 2.14: kept out of the registry, for a run on
such a line.
"""

from __future__ import annotations

import math

import torch

from tests.mutants.base import Mutant


def _bounded(original, lo: float | None, hi: float | None, *, backward_closed: bool, jvp_closed: bool):
    """``original(x)`` (a clamp to [lo, hi]) with derivative 1 inside, 0 outside, and 1 at a bound where closed."""

    def inside(x, closed):
        low = -math.inf if lo is None else lo
        high = math.inf if hi is None else hi
        return ((x >= low) & (x <= high) if closed else (x > low) & (x < high)).to(x.dtype)

    class Bounded(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return original(x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * inside(x, backward_closed)

        @staticmethod
        def jvp(ctx, t):
            (x,) = ctx.saved_tensors
            return t * inside(x, jvp_closed)

    return Bounded


def _patch_hardtanh(mp, *, backward_closed: bool, jvp_closed: bool) -> None:
    F = torch.nn.functional
    hardtanh, relu6 = F.hardtanh, F.relu6

    def mutated_hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
        real = lambda x: hardtanh(x, min_val, max_val)  # noqa: E731
        return _bounded(real, min_val, max_val, backward_closed=backward_closed, jvp_closed=jvp_closed).apply(input)

    def mutated_relu6(input, inplace=False):
        return _bounded(lambda x: relu6(x), 0.0, 6.0, backward_closed=backward_closed, jvp_closed=jvp_closed).apply(input)

    mp.setattr(F, "hardtanh", mutated_hardtanh)
    mp.setattr(F, "relu6", mutated_relu6)


def _patch_clamp(mp, *, backward_closed: bool, jvp_closed: bool) -> None:
    clamp, clamp_min, clamp_max = torch.clamp, torch.clamp_min, torch.clamp_max

    def apply(x, lo, hi):
        return _bounded(lambda t: clamp(t, lo, hi), lo, hi, backward_closed=backward_closed, jvp_closed=jvp_closed).apply(x)

    def mutated_clamp(input, min=None, max=None):
        return apply(input, min, max)

    mp.setattr(torch, "clamp", mutated_clamp)
    mp.setattr(torch, "clip", mutated_clamp)
    mp.setattr(torch.Tensor, "clamp", mutated_clamp)
    mp.setattr(torch.Tensor, "clip", mutated_clamp)
    mp.setattr(torch, "clamp_min", lambda input, min: _bounded(lambda t: clamp_min(t, min), min, None, backward_closed=backward_closed, jvp_closed=jvp_closed).apply(input))
    mp.setattr(torch.Tensor, "clamp_min", lambda self, min: torch.clamp_min(self, min))
    mp.setattr(torch, "clamp_max", lambda input, max: _bounded(lambda t: clamp_max(t, max), None, max, backward_closed=backward_closed, jvp_closed=jvp_closed).apply(input))
    mp.setattr(torch.Tensor, "clamp_max", lambda self, max: torch.clamp_max(self, max))


def _hardtanh_gradient_one_at_bounds(mp):
    _patch_hardtanh(mp, backward_closed=True, jvp_closed=True)


def _clamp_gradient_zero_at_bounds(mp):
    _patch_clamp(mp, backward_closed=False, jvp_closed=False)


def _clamp_gradient_one_at_bounds(mp):
    _patch_clamp(mp, backward_closed=True, jvp_closed=True)


def _bounds_tangent_disagrees(mp):
    # hardtanh / relu6: backward 0 at the bounds (right), forward mode passes the tangent there; clamp (torch < 2.14:
    # g at the bounds): forward mode 0 there
    _patch_hardtanh(mp, backward_closed=False, jvp_closed=True)
    _patch_clamp(mp, backward_closed=True, jvp_closed=False)


def _first_of(mask: torch.Tensor, dim: int | None) -> torch.Tensor:
    """The first set element of ``mask`` (of each row along ``dim``; of all elements when None)."""
    flat = mask.reshape(-1) if dim is None else mask
    hit = flat.to(torch.int64)
    first = (hit * (hit.cumsum(-1 if dim is None else dim) == 1)).bool()
    return first.reshape(mask.shape)


def _reduction(original, pick):
    """A reduction whose backward and jvp use the weights ``pick(x, output)`` (same shape as x)."""

    class Reduction(torch.autograd.Function):
        @staticmethod
        def forward(x, *rest):
            return original(x, *rest)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.rest = inputs[1:]
            ctx.save_for_backward(inputs[0], output)
            ctx.save_for_forward(inputs[0], output)

        @staticmethod
        def backward(ctx, g):
            x, out = ctx.saved_tensors
            weights = pick(x, out, *ctx.rest)
            if ctx.rest and not ctx.rest[1]:  # max(dim) without keepdim: the reduced dim back
                g = g.unsqueeze(ctx.rest[0])
            return (g * weights,) + (None,) * len(ctx.rest)

        @staticmethod
        def jvp(ctx, t, *rest_t):
            x, out = ctx.saved_tensors
            weights = pick(x, out, *ctx.rest)
            if not ctx.rest:
                return (t * weights).sum()
            return (t * weights).sum(ctx.rest[0], keepdim=bool(ctx.rest[1]))

    return Reduction


def _max_all_ties_to_the_first(mp):
    """``max()`` over all elements sends a tie's whole gradient to the first maximal element (as ``max(dim)`` does)."""
    original = torch.max

    function = _reduction(lambda x: original(x), lambda x, out: _first_of(x == out, None).to(x.dtype))

    def mutated(input, *args, **kwargs):
        if args or kwargs:
            return original(input, *args, **kwargs)
        return function.apply(input)

    mp.setattr(torch, "max", mutated)
    mp.setattr(torch.Tensor, "max", mutated)


def _dim_ties_split_evenly(mp):
    """``max(dim)`` / ``min(dim)`` split a tie's gradient evenly (as ``amax``/``amin`` do), the indices unchanged."""
    for name in ("max", "min"):
        original = getattr(torch, name)
        function = _reduction(lambda x, dim, keepdim, _o=original: _o(x, dim, keepdim).values,
                              lambda x, out, dim, keepdim: ((x == (out if keepdim else out.unsqueeze(dim))).to(x.dtype)
                                                            / (x == (out if keepdim else out.unsqueeze(dim))).to(x.dtype).sum(dim, keepdim=True)))
        return_type = getattr(torch.return_types, name)

        def mutated(input, *args, _o=original, _f=function, _r=return_type, **kwargs):
            dim = kwargs.get("dim", args[0] if args else None)
            if dim is None or isinstance(dim, torch.Tensor):
                return _o(input, *args, **kwargs)
            keepdim = bool(kwargs.get("keepdim", args[1] if len(args) > 1 else False))
            indices = _o(input.detach(), dim, keepdim).indices
            return _r((_f.apply(input, dim, keepdim), indices))

        mp.setattr(torch, name, mutated)
        mp.setattr(torch.Tensor, name, mutated)


def _unary(original, derivative):
    class Unary(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return original(x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * derivative(x)

        @staticmethod
        def jvp(ctx, t):
            (x,) = ctx.saved_tensors
            return t * derivative(x)

    return Unary


def _sqrt_gradient_zero_at_zero(mp):
    original = torch.sqrt
    function = _unary(original, lambda x: torch.where(x == 0, torch.zeros_like(x), 0.5 / original(x)))  # a "safe" sqrt
    mp.setattr(torch, "sqrt", lambda x: function.apply(x))
    mp.setattr(torch.Tensor, "sqrt", lambda self: function.apply(self))


def _log_gradient_nan_below_zero(mp):
    original = torch.log
    function = _unary(original, lambda x: torch.where(x < 0, torch.full_like(x, math.nan), 1 / x))
    mp.setattr(torch, "log", lambda x: function.apply(x))
    mp.setattr(torch.Tensor, "log", lambda self: function.apply(self))


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "hardtanh_gradient_one_at_bounds",
        ("NONDIFF-1", "NONDIFF-2"),
        "F.hardtanh and F.relu6 (and nn.Hardtanh, nn.ReLU6) pass the gradient at their bounds, as clamp did before 2.14, instead of the minimum-norm 0",
        _hardtanh_gradient_one_at_bounds,
    ),
    Mutant(
        "max_all_ties_go_to_the_first",
        ("NONDIFF-2",),
        "max() over all elements sends a tie's whole gradient to the first maximal element instead of splitting it evenly",
        _max_all_ties_to_the_first,
    ),
    Mutant(
        "max_min_dim_ties_split_evenly",
        ("NONDIFF-3",),
        "max(dim) and min(dim) split a tie's gradient evenly between the tied elements instead of giving it all to the returned index",
        _dim_ties_split_evenly,
    ),
    Mutant(
        "sqrt_gradient_zero_at_zero",
        ("NONDIFF-4",),
        "torch.sqrt / Tensor.sqrt give the gradient 0 at x = 0 (a 'safe' sqrt) instead of inf",
        _sqrt_gradient_zero_at_zero,
    ),
    Mutant(
        "log_gradient_nan_below_zero",
        ("NONDIFF-5",),
        "torch.log / Tensor.log give a NaN gradient at x < 0 instead of 1/x",
        _log_gradient_nan_below_zero,
    ),
    Mutant(
        "clamp_gradient_zero_at_bounds",
        ("NONDIFF-6",),
        "clamp, clip, clamp_min and clamp_max give 0 at their bounds (the choice of torch 2.14 and later) on a torch before 2.14",
        _clamp_gradient_zero_at_bounds,
    ),
    Mutant(
        "bounds_tangent_disagrees_with_gradient",
        ("NONDIFF-8",),
        "at their bounds, forward mode of hardtanh/relu6 passes the tangent where backward gives 0, and forward mode of clamp gives 0 where backward passes the gradient",
        _bounds_tangent_disagrees,
    ),
)

#: Not in the registry: NONDIFF-7's tests skip before torch 2.14, so tests/test_mutations.py cannot prove it there.
NEEDS_TORCH_2_14: tuple[Mutant, ...] = (
    Mutant(
        "clamp_gradient_one_at_bounds",
        ("NONDIFF-7",),
        "clamp, clip, clamp_min and clamp_max pass the gradient at their bounds (the pre-2.14 choice) on torch 2.14 or later",
        _clamp_gradient_one_at_bounds,
    ),
)
