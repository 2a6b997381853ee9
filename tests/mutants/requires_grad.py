"""Mutants of requires grad clauses (REQGRAD-N, specs/requires_grad.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant


def _zeros_requires_grad_by_default(mp):
    original = torch.zeros

    def zeros(*args, **kwargs):
        dtype = kwargs.get("dtype") or torch.get_default_dtype()
        if "requires_grad" not in kwargs and (dtype.is_floating_point or dtype.is_complex):
            kwargs["requires_grad"] = True
        return original(*args, **kwargs)

    mp.setattr(torch, "zeros", zeros)


def _parameter_not_trainable_by_default(mp):
    original_new = torch.nn.Parameter.__new__

    def new(cls, data=None, requires_grad=False):
        return original_new(cls, data, requires_grad)

    mp.setattr(torch.nn.Parameter, "__new__", new)


def _sin_drops_requires_grad(mp):
    original = torch.sin
    mp.setattr(torch, "sin", lambda t, *a, **k: original(t.detach(), *a, **k))
    mp.setattr(torch.Tensor, "sin", lambda self, *a, **k: original(self.detach(), *a, **k))


def _requires_grad_method_accepts_integers(mp):
    original = torch.Tensor.requires_grad_

    def requires_grad_(self, requires_grad=True):
        if not (self.dtype.is_floating_point or self.dtype.is_complex):
            return self  # silently ignore instead of raising
        return original(self, requires_grad)

    mp.setattr(torch.Tensor, "requires_grad_", requires_grad_)


def _module_requires_grad_false_ignored(mp):
    original = torch.nn.Module.requires_grad_

    def requires_grad_(self, requires_grad=True):
        return self if not requires_grad else original(self, requires_grad)

    mp.setattr(torch.nn.Module, "requires_grad_", requires_grad_)


def _tensor_records_copy_of_a_tensor_requiring_grad(mp):
    original = torch.tensor

    def tensor(data, *args, requires_grad=False, **kwargs):
        if isinstance(data, torch.Tensor) and data.requires_grad:
            return data.to(*args, **kwargs).clone()  # the copy is recorded: CopyBackwards
        return original(data, *args, requires_grad=requires_grad, **kwargs)

    mp.setattr(torch, "tensor", tensor)


def _zeros_like_copies_requires_grad(mp):
    original = torch.zeros_like

    def zeros_like(input, *args, **kwargs):
        kwargs.setdefault("requires_grad", input.requires_grad)
        return original(input, *args, **kwargs)

    mp.setattr(torch, "zeros_like", zeros_like)


def _new_ones_ignores_requires_grad(mp):
    original = torch.Tensor.new_ones

    def new_ones(self, *args, requires_grad=False, **kwargs):
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "new_ones", new_ones)


def _bfloat16_conversion_drops_requires_grad(mp):
    def dropping(original):
        def convert(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            return result.detach() if result.dtype == torch.bfloat16 and self.dtype != torch.bfloat16 else result

        return convert

    for name in ("to", "bfloat16", "type"):
        mp.setattr(torch.Tensor, name, dropping(getattr(torch.Tensor, name)))


def _requires_grad_method_refuses_bfloat16(mp):
    original = torch.Tensor.requires_grad_

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.dtype == torch.bfloat16:
            raise RuntimeError("only Tensors of floating point and complex dtype can require gradients")
        return original(self, requires_grad)

    mp.setattr(torch.Tensor, "requires_grad_", requires_grad_)


def _subclass_requires_grad_method_under_no_grad_returns_a_copy(mp):
    original = torch.Tensor.requires_grad_

    def requires_grad_(self, requires_grad=True):
        before = self.requires_grad
        result = original(self, requires_grad)
        if type(self) is not torch.Tensor and not torch.is_grad_enabled():
            return original(self.detach(), before)  # another tensor, with the old flag
        return result

    mp.setattr(torch.Tensor, "requires_grad_", requires_grad_)


_REQUIRES_GRAD = torch._C.TensorBase.requires_grad


def _requires_grad_property(setter):
    return property(_REQUIRES_GRAD.__get__, setter)


def _requires_grad_setter_ignores_false(mp):
    def set_requires_grad(self, flag):
        if flag:
            _REQUIRES_GRAD.__set__(self, flag)

    mp.setattr(torch.Tensor, "requires_grad", _requires_grad_property(set_requires_grad))


def _requires_grad_setter_true_allowed_on_non_leaf(mp):
    def set_requires_grad(self, flag):
        if flag and not self.is_leaf:
            return  # silently a no-op, like requires_grad_(True)
        _REQUIRES_GRAD.__set__(self, flag)

    mp.setattr(torch.Tensor, "requires_grad", _requires_grad_property(set_requires_grad))


def _requires_grad_method_error_does_not_mention_detach(mp):
    original = torch.Tensor.requires_grad_

    def requires_grad_(self, requires_grad=True):
        if not requires_grad and not self.is_leaf:
            raise RuntimeError("you can only change requires_grad flags of leaf variables.")
        return original(self, requires_grad)

    mp.setattr(torch.Tensor, "requires_grad_", requires_grad_)


_IS_LEAF = torch._C.TensorBase.is_leaf


def _zero_dim_results_report_is_leaf(mp):
    mp.setattr(torch.Tensor, "is_leaf", property(lambda self: self.dim() == 0 or _IS_LEAF.__get__(self)))


MUTANTS = (
    Mutant("zeros_requires_grad_by_default", ("REQGRAD-1",), "torch.zeros(...) requires grad unless told otherwise", _zeros_requires_grad_by_default),
    Mutant("parameter_not_trainable_by_default", ("REQGRAD-4", "REQGRAD-5"), "nn.Parameter defaults to requires_grad=False", _parameter_not_trainable_by_default),
    Mutant("sin_drops_requires_grad", ("REQGRAD-6",), "torch.sin / Tensor.sin detach their input", _sin_drops_requires_grad),
    Mutant("requires_grad_method_accepts_integers", ("REQGRAD-8",), "Tensor.requires_grad_() silently ignores integer tensors", _requires_grad_method_accepts_integers),
    Mutant("module_requires_grad_false_ignored", ("REQGRAD-7", "SAVED-4"), "Module.requires_grad_(False) leaves the parameters trainable", _module_requires_grad_false_ignored),
    Mutant(
        "tensor_records_copy_of_a_tensor_requiring_grad",
        ("REQGRAD-1",),
        "torch.tensor(t) of a t that requires grad records the copy: the result requires grad (torch 0.4.1)",
        _tensor_records_copy_of_a_tensor_requiring_grad,
        regression="https://github.com/pytorch/pytorch/issues/10876",
    ),
    Mutant("zeros_like_copies_requires_grad", ("REQGRAD-2",), "torch.zeros_like(x) requires grad when x does", _zeros_like_copies_requires_grad),
    Mutant("new_ones_ignores_requires_grad", ("REQGRAD-3", "GRADMODE-11"), "Tensor.new_ones(..., requires_grad=True) returns a tensor that does not require grad", _new_ones_ignores_requires_grad),
    Mutant(
        "bfloat16_conversion_drops_requires_grad",
        ("REQGRAD-6",),
        "x.bfloat16() / x.to(torch.bfloat16) / x.type(torch.bfloat16) does not require grad though x does (torch 1.3)",
        _bfloat16_conversion_drops_requires_grad,
        regression="https://github.com/pytorch/pytorch/issues/28548",
    ),
    Mutant("requires_grad_method_refuses_bfloat16", ("REQGRAD-9",), "Tensor.requires_grad_() raises for bfloat16 tensors", _requires_grad_method_refuses_bfloat16),
    Mutant(
        "subclass_requires_grad_method_under_no_grad_returns_a_copy",
        ("REQGRAD-10",),
        "inside no_grad, requires_grad_() on a Tensor subclass returns another tensor with the old flag (torch 1.7.1)",
        _subclass_requires_grad_method_under_no_grad_returns_a_copy,
        regression="https://github.com/pytorch/pytorch/issues/50219",
    ),
    Mutant("requires_grad_setter_ignores_false", ("REQGRAD-10",), "`t.requires_grad = False` on a leaf is ignored", _requires_grad_setter_ignores_false),
    Mutant("requires_grad_setter_true_allowed_on_non_leaf", ("REQGRAD-11",), "`y.requires_grad = True` on a non-leaf is silently accepted", _requires_grad_setter_true_allowed_on_non_leaf),
    Mutant("requires_grad_method_error_does_not_mention_detach", ("REQGRAD-12",), "requires_grad_(False) on a non-leaf raises without pointing to detach()", _requires_grad_method_error_does_not_mention_detach),
    Mutant("zero_dim_results_report_is_leaf", ("REQGRAD-13",), "Tensor.is_leaf is True for every 0-d tensor, recorded results included", _zero_dim_results_report_is_leaf),
)
