"""Mutants of the gradient values clauses (specs/gradient_values.md): each breaks one behaviour the way a regression would.

Most replace a torch op (its ``torch.*`` function and ``Tensor`` method; ``nn`` modules and operators call those)
by a custom ``autograd.Function`` whose forward is the real op and whose backward or forward-mode rule is wrong
the way a broken derivative formula would be.  The Functions use the ``setup_context`` style and define ``jvp``,
so ``torch.func`` and forward-mode AD run through them as through the real op.
"""

from __future__ import annotations

from typing import Callable

import torch

from tests.mutants.base import Mutant

#: the registry's unary transcendental ops: name -> (the real op, its derivative as a function of the input)
_TRANSCENDENTAL = {
    "sin": (torch.sin, torch.cos),
    "cos": (torch.cos, lambda x: -torch.sin(x)),
    "exp": (torch.exp, torch.exp),
    "tanh": (torch.tanh, lambda x: 1 - torch.tanh(x) ** 2),
    "sigmoid": (torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))),
}


def _unary_function(op: Callable, derivative: Callable, *, backward: Callable | None = None, jvp: Callable | None = None):
    """A Function computing ``op``; its backward is ``backward(x, g)`` (default: the true ``g * derivative(x)``) and
    its forward-mode rule ``jvp(x, t)`` (default: the true ``t * derivative(x)``)."""
    backward_rule = backward or (lambda x, g: g * derivative(x))
    jvp_rule = jvp or (lambda x, t: t * derivative(x))

    class Mutated(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return op(x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            (x,) = inputs
            ctx.save_for_backward(x)
            ctx.save_for_forward(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return backward_rule(x, g)

        @staticmethod
        def jvp(ctx, t):
            (x,) = ctx.saved_tensors
            return jvp_rule(x, t)

    return Mutated


def _patch_unary(mp, name: str, function) -> None:
    mp.setattr(torch, name, lambda x: function.apply(x))
    mp.setattr(torch.Tensor, name, lambda self: function.apply(self))


def _binary_function(op: Callable, *, backward: Callable, jvp: Callable):
    """A Function computing ``op(a, b)``; its backward is ``backward(a, b, g)`` (the two gradients, summed back to
    each operand's shape) and its forward-mode rule ``jvp(a, b, ta, tb)``."""

    class Mutated(torch.autograd.Function):
        @staticmethod
        def forward(a, b):
            return op(a, b)

        @staticmethod
        def setup_context(ctx, inputs, output):
            a, b = inputs
            ctx.save_for_backward(a, b)
            ctx.save_for_forward(a, b)

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            grad_a, grad_b = backward(a, b, g)
            return grad_a.sum_to_size(a.shape), grad_b.sum_to_size(b.shape)

        @staticmethod
        def jvp(ctx, ta, tb):
            a, b = ctx.saved_tensors
            return jvp(a, b, ta, tb)

    return Mutated


def _patch_binary(mp, name: str, function, *, tensors_only: bool = False) -> None:
    """``torch.NAME`` and ``Tensor.NAME`` apply ``function``; other calls (``out=``, extra arguments, with
    ``tensors_only`` a Python number operand) go to the original."""
    original = getattr(torch, name)

    def patched(a, b, *args, **kwargs):
        if args or kwargs or (tensors_only and not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor))):
            return original(a, b, *args, **kwargs)
        return function.apply(a, b)

    mp.setattr(torch, name, patched)
    mp.setattr(torch.Tensor, name, patched)


def _transcendental_backward_doubled(mp):
    for name, (op, derivative) in _TRANSCENDENTAL.items():
        _patch_unary(mp, name, _unary_function(op, derivative, backward=lambda x, g, d=derivative: 2 * g * d(x)))


def _transcendental_backward_not_differentiable(mp):
    for name, (op, derivative) in _TRANSCENDENTAL.items():
        # the derivative is evaluated at a detached input: first order right, its own derivative lost
        _patch_unary(mp, name, _unary_function(op, derivative, backward=lambda x, g, d=derivative: g * d(x.detach())))


def _exp_backward_not_linear_in_grad(mp):
    op, derivative = _TRANSCENDENTAL["exp"]
    # g * |g| * exp(x): right for the one-hot incoming gradients of gradcheck's slow mode, wrong for any other
    _patch_unary(mp, "exp", _unary_function(op, derivative, backward=lambda x, g: g * g.abs() * derivative(x)))


def _tanh_jvp_misses_the_square(mp):
    op, derivative = _TRANSCENDENTAL["tanh"]
    _patch_unary(mp, "tanh", _unary_function(op, derivative, jvp=lambda x, t: t * (1 - torch.tanh(x))))


def _div_backward_wrong_sign_for_divisor(mp):
    # d/db of a / b is -a / b**2: the sign dropped in backward; forward mode stays right
    function = _binary_function(
        torch.div,
        backward=lambda a, b, g: (g / b, g * a / (b * b)),
        jvp=lambda a, b, ta, tb: ta / b - tb * a / (b * b),
    )
    _patch_binary(mp, "div", function, tensors_only=True)
    mp.setattr(torch.Tensor, "__truediv__", getattr(torch.Tensor, "div"))


def _relu_gradient_one_at_zero(mp):
    original = torch.relu
    # relu'(0) = 1 (x >= 0), where the minimum-norm sub-gradient is 0
    function = _unary_function(original, lambda x: (x >= 0).to(x.dtype))
    _patch_unary(mp, "relu", function)


def _maximum_ties_go_to_the_first_operand(mp):
    def first(a, b, like):  # a tie sends the whole gradient to a, as max(dim) does to one index
        return (a >= b).to(like.dtype)

    function = _binary_function(
        torch.maximum,
        backward=lambda a, b, g: (g * first(a, b, g), g * (1 - first(a, b, g))),
        jvp=lambda a, b, ta, tb: ta * first(a, b, ta) + tb * (1 - first(a, b, ta)),
    )
    _patch_binary(mp, "maximum", function)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "transcendental_backward_doubled",
        ("GRADVAL-1", "GRADVAL-3"),
        "the backward of sin, cos, exp, tanh and sigmoid (torch.*, Tensor.*, nn modules) is twice the derivative; forward mode stays right",
        _transcendental_backward_doubled,
    ),
    Mutant(
        "div_backward_wrong_sign_for_divisor",
        ("GRADVAL-1",),
        "the backward of a / b (torch.div, Tensor.div, /) gives +g*a/b**2 to the divisor instead of -g*a/b**2",
        _div_backward_wrong_sign_for_divisor,
    ),
    Mutant(
        "exp_backward_not_linear_in_grad",
        ("GRADVAL-1",),
        "the backward of exp computes g*|g|*exp(x): right for one-hot incoming gradients (gradcheck's slow mode), wrong for any other",
        _exp_backward_not_linear_in_grad,
    ),
    Mutant(
        "tanh_jvp_misses_the_square",
        ("GRADVAL-2",),
        "forward-mode AD of tanh (torch.tanh, Tensor.tanh, nn.Tanh) computes t*(1-tanh(x)) instead of t*(1-tanh(x)**2); reverse mode stays right",
        _tanh_jvp_misses_the_square,
    ),
    Mutant(
        "transcendental_backward_not_differentiable",
        ("GRADVAL-4",),
        "the backward of sin, cos, exp, tanh and sigmoid evaluates the derivative at a detached input: first-order gradients right, second order through them wrong",
        _transcendental_backward_not_differentiable,
    ),
    Mutant(
        "relu_gradient_one_at_zero",
        ("GRADVAL-5",),
        "relu (torch.relu, Tensor.relu, nn.ReLU) gives gradient 1 at 0, not the minimum-norm sub-gradient 0",
        _relu_gradient_one_at_zero,
    ),
    Mutant(
        "maximum_ties_go_to_the_first_operand",
        ("GRADVAL-5",),
        "torch.maximum(a, b) at a == b sends the whole gradient to a instead of half to each",
        _maximum_ties_go_to_the_first_operand,
    ),
)
