"""Mutants of the forward ad clauses (specs/forward_ad.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant

#: elementwise ops of the registry whose forward-mode formula the mutant below gets wrong
_WRONG_JVP_OPS = ("sin", "cos", "tanh", "sigmoid", "square", "abs")


def _elementwise_jvp_uses_the_value(mp):
    """sin, cos, tanh, sigmoid, square and abs (function, method, module and abs() forms): the forward-mode formula multiplies the
    tangent by the op's value instead of its derivative (reverse mode is right)."""
    VF = torch._C._VariableFunctions
    derivatives = {
        "sin": torch.cos,
        "cos": lambda a: -torch.sin(a),
        "tanh": lambda a: 1 - torch.tanh(a) ** 2,
        "sigmoid": lambda a: torch.sigmoid(a) * (1 - torch.sigmoid(a)),
        "square": lambda a: 2 * a,
        "abs": torch.sign,
    }

    def make(name):
        function = getattr(VF, name)
        derivative = derivatives[name]

        class Op(torch.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                ctx.save_for_backward(a)
                ctx.save_for_forward(a)
                return function(a)

            @staticmethod
            def backward(ctx, grad):
                (a,) = ctx.saved_tensors
                return grad * derivative(a)

            @staticmethod
            def jvp(ctx, tangent):
                (a,) = ctx.saved_tensors
                return tangent * function(a)  # the value, not the derivative

        return Op.apply

    for name in _WRONG_JVP_OPS:
        apply = make(name)
        mp.setattr(torch, name, apply)
        mp.setattr(torch.Tensor, name, lambda self, _apply=apply: _apply(self))
    mp.setattr(torch.Tensor, "__abs__", lambda self: torch.abs(self))
    mp.setattr(torch.nn.Tanh, "forward", lambda self, a: torch.tanh(a))
    mp.setattr(torch.nn.Sigmoid, "forward", lambda self, a: torch.sigmoid(a))


def _make_dual_without_a_level_returns_the_primal(mp):
    """make_dual outside any dual level returns the primal unchanged instead of raising."""
    import torch.autograd.forward_ad as fwAD

    original = fwAD.make_dual

    def make_dual(tensor, tangent, *, level=None):
        if level is None and fwAD._current_level < 0:
            return tensor
        return original(tensor, tangent, level=level)

    mp.setattr(fwAD, "make_dual", make_dual)


def _unpack_dual_without_a_level_gives_zero_tangents(mp):
    """unpack_dual outside any dual level gives a zero tangent instead of None (tangents materialized as zeros)."""
    import torch.autograd.forward_ad as fwAD

    original = fwAD.unpack_dual

    def unpack_dual(tensor, *, level=None):
        unpacked = original(tensor, level=level)
        if unpacked.tangent is None and fwAD._current_level < 0:
            return fwAD.UnpackedDualTensor(unpacked.primal, torch.zeros_like(unpacked.primal))
        return unpacked

    mp.setattr(fwAD, "unpack_dual", unpack_dual)


def _nested_levels_silently_share_the_outer_one(mp):
    """Entering a dual level while one is active returns the active level instead of raising (and its exit
    leaves the outer level alone)."""
    import torch.autograd.forward_ad as fwAD

    original_enter = fwAD.enter_dual_level

    def enter_dual_level():
        if fwAD._current_level >= 0:
            return fwAD._current_level
        return original_enter()

    class dual_level(fwAD.dual_level):
        def __enter__(self):
            self._shared = fwAD._current_level >= 0
            return fwAD._current_level if self._shared else original_enter()

        def __exit__(self, *exc):
            if not self._shared:
                fwAD.exit_dual_level()

    mp.setattr(fwAD, "enter_dual_level", enter_dual_level)
    mp.setattr(fwAD, "dual_level", dual_level)


#: the in-place methods the FWAD-4 tests use
_IN_PLACE_METHODS = ("mul_", "add_", "sin_", "pow_", "copy_", "__iadd__")


def _in_place_through_a_view_keeps_the_tangent(mp):
    """An in-place operation on a view of a dual tensor changes the primal but leaves the tangent (of the view and
    of its base) as it was."""
    import torch.autograd.forward_ad as fwAD

    def wrap(name):
        original = getattr(torch.Tensor, name)

        def method(self, *args, **kwargs):
            if self._base is None or fwAD._current_level < 0:
                return original(self, *args, **kwargs)
            tangent = fwAD.unpack_dual(self).tangent
            before = None if tangent is None else tangent.clone()
            result = original(self, *args, **kwargs)
            after = fwAD.unpack_dual(self).tangent
            if before is not None and after is not None:
                with torch.no_grad():
                    after.copy_(before)
            return result

        return method

    for name in _IN_PLACE_METHODS:
        mp.setattr(torch.Tensor, name, wrap(name))


MUTANTS = (
    Mutant("elementwise_jvp_uses_the_value", ("FWAD-1", "FWAD-3"), "sin, cos, tanh, sigmoid, square, abs (function, method, module, abs()): the forward-mode tangent is the tangent times the op's value, not its derivative", _elementwise_jvp_uses_the_value),
    Mutant("make_dual_without_a_level_returns_the_primal", ("FWAD-2",), "fwAD.make_dual outside any dual level returns the primal instead of raising", _make_dual_without_a_level_returns_the_primal),
    Mutant("unpack_dual_without_a_level_gives_zero_tangents", ("FWAD-2",), "fwAD.unpack_dual outside any dual level gives a zero tangent, not None", _unpack_dual_without_a_level_gives_zero_tangents),
    Mutant("nested_levels_silently_share_the_outer_one", ("FWAD-3",), "entering a dual level inside another succeeds silently (the inner shares the outer level)", _nested_levels_silently_share_the_outer_one),
    Mutant("in_place_through_a_view_keeps_the_tangent", ("FWAD-4",), "an in-place operation on a view of a dual tensor leaves the tangent unchanged", _in_place_through_a_view_keeps_the_tangent),
)
