"""Mutants of inplace clauses (INPLACE-N, specs/inplace.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant


def _add_on_leaf_allowed(mp):
    original = torch.Tensor.add_

    def add_(self, *args, **kwargs):
        if self.is_leaf and self.requires_grad:
            with torch.no_grad():  # the missing check: the write goes through unrecorded
                return original(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "add_", add_)


def _mul_bypasses_autograd(mp):
    original = torch.Tensor.mul_

    def mul_(self, *args, **kwargs):
        if self.requires_grad and not self.is_leaf:
            original(self.data, *args, **kwargs)  # neither recorded nor versioned
            return self
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "mul_", mul_)



def _sub_on_leaf_writes_before_raising(mp):
    original = torch.Tensor.sub_

    def sub_(self, *args, **kwargs):
        if torch.is_grad_enabled() and self.is_leaf and self.requires_grad:
            with torch.no_grad():
                original(self, *args, **kwargs)  # the values change first
        return original(self, *args, **kwargs)  # then the leaf check raises

    mp.setattr(torch.Tensor, "sub_", sub_)


def _in_place_on_a_view_of_a_leaf_allowed(mp):
    original = torch.Tensor.mul_

    def mul_(self, *args, **kwargs):
        base = self._base
        if torch.is_grad_enabled() and base is not None and base.is_leaf and base.requires_grad:
            with torch.no_grad():  # not refused at the op; the graph is left inconsistent
                return original(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "mul_", mul_)


def _add_on_tensor_not_requiring_grad_keeps_version(mp):
    original = torch.Tensor.add_

    def add_(self, *args, **kwargs):
        version = self._version
        result = original(self, *args, **kwargs)
        if not self.requires_grad:
            torch._C._autograd._unsafe_set_version_counter((self,), (version,))
        return result

    mp.setattr(torch.Tensor, "add_", add_)


def _add_with_grad_mode_off_returns_a_copy(mp):
    original = torch.Tensor.add_

    def add_(self, *args, **kwargs):
        if not torch.is_grad_enabled():
            return self.add(*args, **kwargs)  # the leaf itself is never written
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "add_", add_)


def _sub_with_grad_mode_off_writes_in_place(mp):
    original = torch.Tensor.__sub__

    def __sub__(self, other):
        if not torch.is_grad_enabled() and isinstance(other, torch.Tensor) and other.shape == self.shape:
            return self.sub_(other)  # an "optimisation": reuse the left operand's storage
        return original(self, other)

    mp.setattr(torch.Tensor, "__sub__", __sub__)


class _ExpSavingAnUncheckedCopy(torch.autograd.Function):
    """exp whose backward reads its output through a plain alias, outside the version check."""

    @staticmethod
    def forward(ctx, t):
        result = torch.exp(t)
        ctx.result = result
        return result

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.result.detach()


def _exp_output_not_version_checked(mp):
    mp.setattr(torch.Tensor, "exp", lambda self: _ExpSavingAnUncheckedCopy.apply(self))


class _AddScalarSavingItsInput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t, number):
        ctx.save_for_backward(t)
        return t + number

    @staticmethod
    def backward(ctx, grad):
        ctx.saved_tensors  # noqa: B018 - unpacking checks the version of what it saved, needlessly
        return grad, None


def _add_scalar_saves_its_input(mp):
    original = torch.Tensor.__add__

    def __add__(self, other):
        if isinstance(other, (int, float)) and self.requires_grad and torch.is_grad_enabled():
            return _AddScalarSavingItsInput.apply(self, other)
        return original(self, other)

    mp.setattr(torch.Tensor, "__add__", __add__)


def _mul_through_a_view_not_recorded_in_the_base(mp):
    original = torch.Tensor.mul_

    def mul_(self, *args, **kwargs):
        if self._base is not None and self.requires_grad and not self._base.is_leaf:
            original(self.detach(), *args, **kwargs)  # the values change, the base's history does not
            return self
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "mul_", mul_)



def _add_out_keeps_version(mp):
    original = torch.add

    def add(*args, out=None, **kwargs):
        if out is None:
            return original(*args, **kwargs)
        version = out._version
        result = original(*args, out=out, **kwargs)
        torch._C._autograd._unsafe_set_version_counter((out,), (version,))  # the out= path forgets the bump
        return result

    mp.setattr(torch, "add", add)


MUTANTS = (
    Mutant("add_on_leaf_allowed", ("INPLACE-1",), "Tensor.add_() on a leaf that requires grad writes instead of raising", _add_on_leaf_allowed),
    Mutant("mul_bypasses_autograd", ("INPLACE-4", "INPLACE-7"), "Tensor.mul_() on a non-leaf is neither recorded nor versioned", _mul_bypasses_autograd),
    Mutant(
        "sub_on_leaf_writes_before_raising",
        ("INPLACE-1",),
        "Tensor.sub_() on a leaf that requires grad raises only after writing (torch 0.2)",
        _sub_on_leaf_writes_before_raising,
        regression="https://github.com/pytorch/pytorch/issues/2940",
    ),
    Mutant(
        "in_place_on_a_view_of_a_leaf_allowed",
        ("INPLACE-1",),
        "Tensor.mul_() on a view of a leaf that requires grad is not refused at the op (torch <= 1.7: it failed at backward with 'leaf variable has been moved into the graph interior')",
        _in_place_on_a_view_of_a_leaf_allowed,
        regression="https://github.com/pytorch/pytorch/issues/39150",
    ),
    Mutant(
        "add_on_tensor_not_requiring_grad_keeps_version",
        ("INPLACE-4",),
        "Tensor.add_() on a tensor that does not require grad leaves _version unchanged (torch 1.0/1.1: in-place ops not differentiable for an input did not bump its version)",
        _add_on_tensor_not_requiring_grad_keeps_version,
        regression="https://github.com/pytorch/pytorch/issues/14571",
    ),
    Mutant("add_with_grad_mode_off_returns_a_copy", ("INPLACE-2",), "Tensor.add_() with grad mode off returns a new tensor and leaves self unchanged", _add_with_grad_mode_off_returns_a_copy),
    Mutant("sub_with_grad_mode_off_writes_in_place", ("INPLACE-3",), "`a - b` with grad mode off writes the result into a", _sub_with_grad_mode_off_writes_in_place),
    Mutant("exp_output_not_version_checked", ("INPLACE-5",), "Tensor.exp() saves its output outside the version check: modifying it goes unnoticed at backward", _exp_output_not_version_checked),
    Mutant("add_scalar_saves_its_input", ("INPLACE-6",), "`t + number` saves t for backward though its gradient does not need it: modifying t afterwards makes backward raise", _add_scalar_saves_its_input),
    Mutant("mul_through_a_view_not_recorded_in_the_base", ("INPLACE-8",), "Tensor.mul_() through a view of a non-leaf changes the values but not the base's history", _mul_through_a_view_not_recorded_in_the_base),
    Mutant("add_out_keeps_version", ("INPLACE-4",), "torch.add(..., out=t) writes into t without incrementing its _version", _add_out_keeps_version),
)
