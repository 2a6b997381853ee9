"""Mutants of transfer clauses (XFER-N, specs/transfer.md): each breaks one behaviour the way a regression would.

``MUTANTS`` are proven by ``tests/test_mutations.py`` (on the CPU, and XFER-6's on the emulated device).
``NEEDS_CUDA_OR_TORCH_1_13`` break clauses whose tests cannot run on torch 2.13 without CUDA (XFER-4 needs
CUDA, XFER-12 torch < 2.0): they are kept out of the registry, for a run where those tests do run.
"""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant


def _cpu_result_requires_grad(mp):
    original = torch.Tensor.cpu

    def cpu(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if (result.is_floating_point() or result.is_complex()) and not result.requires_grad:
            return result.detach().requires_grad_()
        return result

    mp.setattr(torch.Tensor, "cpu", cpu)


def _to_dtype_is_not_differentiable(mp):
    original = torch.Tensor.to

    def to(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        return result.detach() if result is not self and result.dtype != self.dtype else result

    mp.setattr(torch.Tensor, "to", to)


def _to_always_copies(mp):
    original = torch.Tensor.to
    mp.setattr(torch.Tensor, "to", lambda self, *a, **k: (lambda r: r.clone() if r is self else r)(original(self, *a, **k)))


def _numpy_ignores_requires_grad(mp):
    original = torch.Tensor.numpy
    mp.setattr(torch.Tensor, "numpy", lambda self, *a, **k: original(self.detach(), *a, **k))


def _numpy_returns_a_copy(mp):
    original = torch.Tensor.numpy
    mp.setattr(torch.Tensor, "numpy", lambda self, *a, **k: original(self, *a, **k).copy())


def _numpy_force_ignores_the_conj_bit(mp):
    original = torch.Tensor.numpy

    def numpy(self, *, force=False):
        if force and self.is_conj():
            return original(self.detach().cpu().conj(), force=True)  # the stored, unconjugated values
        return original(self, force=force)

    mp.setattr(torch.Tensor, "numpy", numpy)


def _item_returns_float_for_integers(mp):
    original = torch.Tensor.item

    def item(self):
        value = original(self)
        return float(value) if type(value) is int else value

    mp.setattr(torch.Tensor, "item", item)


def _tolist_returns_floats_for_integers(mp):
    original = torch.Tensor.tolist

    def as_floats(value):
        if isinstance(value, list):
            return [as_floats(v) for v in value]
        return float(value) if type(value) is int else value

    mp.setattr(torch.Tensor, "tolist", lambda self: as_floats(original(self)))


def _item_of_many_elements_returns_the_first(mp):
    original = torch.Tensor.item
    mp.setattr(torch.Tensor, "item", lambda self: original(self.reshape(-1)[0]) if self.numel() > 1 else original(self))


def _numpy_moves_non_cpu_tensors(mp):
    original = torch.Tensor.numpy
    mp.setattr(torch.Tensor, "numpy", lambda self, *a, **k: original(self.cpu() if self.device.type != "cpu" else self, *a, **k))


MUTANTS = (
    Mutant(
        "cpu_result_requires_grad",
        ("XFER-1",),
        "Tensor.cpu() of a floating-point tensor that does not require grad returns one that does (y.detach().cpu() requires grad)",
        _cpu_result_requires_grad,
    ),
    Mutant("to_dtype_is_not_differentiable", ("XFER-2",), "Tensor.to(dtype) returns a detached copy: no grad_fn, no gradient back to y", _to_dtype_is_not_differentiable),
    Mutant("to_always_copies", ("XFER-3",), "Tensor.to() copies even when nothing changes", _to_always_copies),
    Mutant("numpy_ignores_requires_grad", ("XFER-5",), "Tensor.numpy() silently detaches a tensor that requires grad", _numpy_ignores_requires_grad),
    Mutant("numpy_returns_a_copy", ("XFER-7",), "Tensor.numpy() of a CPU tensor returns a copy instead of sharing its memory", _numpy_returns_a_copy),
    Mutant(
        "numpy_force_ignores_the_conj_bit",
        ("XFER-8",),
        "Tensor.numpy(force=True) of a conjugate view returns the unconjugated values (as .numpy() did on the master "
        "branch between the conjugate view and pytorch#61925; not in a release)",
        _numpy_force_ignores_the_conj_bit,
    ),
    Mutant("item_returns_float_for_integers", ("XFER-9",), "Tensor.item() of an integer tensor returns a float", _item_returns_float_for_integers),
    Mutant("tolist_returns_floats_for_integers", ("XFER-10",), "Tensor.tolist() of an integer tensor holds floats", _tolist_returns_floats_for_integers),
    Mutant("item_of_many_elements_returns_the_first", ("XFER-11",), "Tensor.item() of a tensor with several elements returns the first instead of raising", _item_of_many_elements_returns_the_first),
    Mutant(
        "numpy_moves_non_cpu_tensors",
        ("XFER-6",),
        "Tensor.numpy() of a non-CPU tensor silently copies it to the CPU instead of raising TypeError",
        _numpy_moves_non_cpu_tensors,
    ),
)


def _cuda_is_not_differentiable(mp):
    original = torch.Tensor.cuda
    mp.setattr(torch.Tensor, "cuda", lambda self, *a, **k: original(self, *a, **k).detach())


def _item_of_many_elements_raises_runtime_error(mp):
    original = torch.Tensor.item

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
        return original(self)

    mp.setattr(torch.Tensor, "item", item)


#: Not in the registry: their clauses' tests skip on torch 2.13 without CUDA, so tests/test_mutations.py cannot prove them.
NEEDS_CUDA_OR_TORCH_1_13 = (
    Mutant("cuda_is_not_differentiable", ("XFER-4",), "Tensor.cuda() returns a detached copy, unlike .to('cuda')", _cuda_is_not_differentiable),
    Mutant(
        "item_of_many_elements_raises_runtime_error_on_1_13",
        ("XFER-12",),
        "Tensor.item() of a tensor without exactly one element raises RuntimeError, not 1.13's ValueError",
        _item_of_many_elements_raises_runtime_error,
    ),
)
