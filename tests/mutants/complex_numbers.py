"""Mutants of the complex numbers clauses (specs/complex_numbers.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from conformance.testlib.graphs import recorded_leaves
from tests.mutants.base import Mutant


def _as_list(tensors) -> list[torch.Tensor]:
    return [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)


def _rewrite_complex_leaf_gradients(mp, rewrite) -> None:
    """torch.autograd.backward (which Tensor.backward calls) and torch.autograd.grad give ``rewrite(g)`` instead of
    the gradient ``g`` of every complex leaf."""
    original_backward, original_grad = torch.autograd.backward, torch.autograd.grad

    def backward(tensors, *args, **kwargs):
        roots = _as_list(tensors)
        leaves = [leaf for root in roots for leaf in recorded_leaves(root) if leaf.is_complex()]
        before = {id(leaf): None if leaf.grad is None else leaf.grad.clone() for leaf in leaves}
        result = original_backward(tensors, *args, **kwargs)
        for leaf in leaves:
            old = before[id(leaf)]
            if leaf.grad is not None:
                with torch.no_grad():
                    added = leaf.grad - (0 if old is None else old)
                    leaf.grad.copy_((0 if old is None else old) + rewrite(added))
        return result

    def grad(outputs, inputs, *args, **kwargs):
        result = original_grad(outputs, inputs, *args, **kwargs)
        return tuple(None if g is None else rewrite(g) if g.is_complex() else g for g in result)

    mp.setattr(torch.autograd, "backward", backward)
    mp.setattr(torch.autograd, "grad", grad)


def _complex_leaf_gradients_halved(mp):
    _rewrite_complex_leaf_gradients(mp, lambda g: g * 0.5)


def _complex_leaf_gradients_conjugated(mp):
    _rewrite_complex_leaf_gradients(mp, lambda g: g.conj())


class _ConjugatedImag(torch.autograd.Function):
    """``imag`` whose backward embeds the real gradient g as -1j·g (the conjugate of the right 1j·g)."""

    @staticmethod
    def forward(ctx, z):
        return torch._C.TensorBase.imag.__get__(z).clone()

    @staticmethod
    def backward(ctx, g):
        return -1j * g


class _ConjugatedAbs(torch.autograd.Function):
    """``abs`` of a complex tensor whose backward gives g·conj(z)/|z| instead of g·z/|z|."""

    @staticmethod
    def forward(ctx, z, original):
        ctx.save_for_backward(z)
        return original(z)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * z.conj() / z.abs(), None


def _complex_to_real_backward_conjugated(mp):
    original_function, original_method = torch.abs, torch.Tensor.abs
    raw_imag = torch._C.TensorBase.imag

    def imag(self):
        return _ConjugatedImag.apply(self) if self.requires_grad and torch.is_grad_enabled() else raw_imag.__get__(self)

    def abs_function(input, *args, **kwargs):
        if input.is_complex() and not args and not kwargs:
            return _ConjugatedAbs.apply(input, original_function)
        return original_function(input, *args, **kwargs)

    def abs_method(self, *args, **kwargs):
        if self.is_complex() and not args and not kwargs:
            return _ConjugatedAbs.apply(self, original_method)
        return original_method(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "imag", property(imag, raw_imag.__set__))
    mp.setattr(torch, "imag", lambda input: imag(input))
    mp.setattr(torch, "abs", abs_function)
    mp.setattr(torch.Tensor, "abs", abs_method)


def _complex_scalar_backward_seeds_one(mp):
    """pytorch#92750 (torch < 2.1): backward() of a complex scalar without a gradient seeded 1 + 0j."""
    original_backward, original_grad = torch.autograd.backward, torch.autograd.grad

    def seeds(tensors):
        return [torch.ones_like(t) if t.is_complex() and t.numel() == 1 else None for t in _as_list(tensors)]

    def backward(tensors, grad_tensors=None, *args, **kwargs):
        if grad_tensors is None and any(s is not None for s in seeds(tensors)):
            grad_tensors = seeds(tensors)
        return original_backward(tensors, grad_tensors, *args, **kwargs)

    def grad(outputs, inputs, grad_outputs=None, *args, **kwargs):
        if grad_outputs is None and any(s is not None for s in seeds(outputs)):
            grad_outputs = seeds(outputs)
        return original_grad(outputs, inputs, grad_outputs, *args, **kwargs)

    mp.setattr(torch.autograd, "backward", backward)
    mp.setattr(torch.autograd, "grad", grad)


class _UnconjugatedBackward(torch.autograd.Function):
    """An elementwise function f of a complex tensor whose backward gives g·f'(z) instead of g·conj(f'(z))."""

    @staticmethod
    def forward(ctx, z, fn):
        ctx.save_for_backward(z)
        ctx.fn = fn
        return fn(z)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        with torch.enable_grad():
            z_ = z.detach().requires_grad_()
            (right,) = torch.autograd.grad(ctx.fn(z_), z_, g.conj())  # conj(g)·conj(f'(z))
        return right.conj(), None  # g·f'(z)


#: the holomorphic elementwise functions of the registry, in their function and method forms
_HOLOMORPHIC = ("sin", "cos", "exp", "tanh", "sigmoid", "square")


def _holomorphic_backward_not_conjugated(mp):
    def wrap(original):
        def fn(input, *args, **kwargs):
            if input.is_complex() and input.requires_grad and not args and not kwargs:
                return _UnconjugatedBackward.apply(input, original)
            return original(input, *args, **kwargs)

        return fn

    for name in _HOLOMORPHIC:
        mp.setattr(torch, name, wrap(getattr(torch, name)))
        mp.setattr(torch.Tensor, name, wrap(getattr(torch.Tensor, name)))


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "complex_leaf_gradients_halved",
        ("COMPLEX-1", "COMPLEX-2"),
        "the gradient of a complex leaf is the textbook Wirtinger ∂L/∂z* = (∂L/∂x + i·∂L/∂y)/2, half the note's convention (|z|² gives z, not 2z)",
        _complex_leaf_gradients_halved,
    ),
    Mutant(
        "complex_leaf_gradients_conjugated",
        ("COMPLEX-2", "COMPLEX-1"),
        "the gradient of a complex leaf is ∂L/∂z (JAX's convention), the conjugate of the note's: a step against it does not descend",
        _complex_leaf_gradients_conjugated,
    ),
    Mutant(
        "complex_to_real_backward_conjugated",
        ("COMPLEX-3",),
        "the backward of imag and of abs of a complex tensor conjugates the gradient it gives the complex input (-1j·g for imag, g·conj(z)/|z| for abs)",
        _complex_to_real_backward_conjugated,
    ),
    Mutant(
        "complex_scalar_backward_seeds_one",
        ("COMPLEX-4",),
        "backward() / autograd.grad of a complex scalar without a gradient seeds 1 + 0j instead of raising (torch < 2.1)",
        _complex_scalar_backward_seeds_one,
        regression="https://github.com/pytorch/pytorch/issues/92750",
    ),
    Mutant(
        "holomorphic_backward_not_conjugated",
        ("COMPLEX-5",),
        "the backward of sin, cos, exp, tanh, sigmoid and square on complex tensors multiplies the gradient by f'(z) instead of its conjugate",
        _holomorphic_backward_not_conjugated,
    ),
)
