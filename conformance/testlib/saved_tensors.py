"""Record what autograd saves for backward, through ``torch.autograd.graph.saved_tensors_hooks``.

``with record_saved_tensors() as log: <forward>`` installs a pack hook that
counts every tensor an operation saves for backward and its size in bytes, and
wraps each in a :class:`Packed` holder the graph keeps instead of the tensor.
``log.alive()`` says how many holders the graph still references: autograd
drops them when it frees the graph (after a backward without
``retain_graph=True``, or when the graph goes out of scope), so this is a
deterministic measure of what the graph keeps alive, on any device.

The holder keeps a *detached* alias of the saved tensor (same storage, no
``grad_fn``): holding the tensor itself would make a saved output reference its
own graph node, a cycle that keeps the graph alive.  The unpack hook returns
the alias, scaled by ``unpack_scale`` when it is not 1 (tests use that to see
that backward really uses what the unpack hook returns).
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch

__all__ = ["Packed", "SavedTensorLog", "record_saved_tensors", "tensor_bytes"]


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes of the tensor's elements (not of its whole storage)."""
    return tensor.numel() * tensor.element_size()


class Packed:
    """What the graph stores instead of a saved tensor; weak-referenceable, so its release is observable."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


@dataclass
class SavedTensorLog:
    """Every tensor packed while the recorder was active, in order."""

    unpack_scale: float = 1.0
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    dtypes: list[torch.dtype] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # bytes of each saved tensor
    intermediate: list[bool] = field(default_factory=list)  # each: neither a leaf nor a view of one
    _holders: list[weakref.ref] = field(default_factory=list, repr=False)

    @property
    def count(self) -> int:
        """Number of tensors saved for backward."""
        return len(self.sizes)

    @property
    def bytes(self) -> int:
        """Total bytes of the tensors saved for backward (a tensor saved twice counts twice)."""
        return sum(self.sizes)

    @property
    def intermediate_bytes(self) -> int:
        """Bytes of the saved tensors that are intermediate results (not leaves such as parameters
        or inputs, nor views of them): memory that only the graph keeps alive."""
        return sum(size for size, flag in zip(self.sizes, self.intermediate) if flag)

    def alive(self) -> int:
        """How many of the packed holders something (the graph) still references."""
        return sum(ref() is not None for ref in self._holders)

    def held_bytes(self, *, intermediate_only: bool = False) -> int:
        """Bytes of the saved tensors whose holders something (the graph) still references."""
        return sum(
            size
            for size, ref, flag in zip(self.sizes, self._holders, self.intermediate)
            if ref() is not None and (flag or not intermediate_only)
        )

    def saved(self) -> list[torch.Tensor]:
        """The saved tensors (detached aliases: same storage, shape, dtype and device) still held, in packing order."""
        return [holder.tensor for holder in (ref() for ref in self._holders) if holder is not None]

    def describe(self) -> str:
        items = ", ".join(
            f"{str(dtype).replace('torch.', '')}{list(shape)}" for dtype, shape in zip(self.dtypes, self.shapes)
        )
        return f"{self.count} saved tensor(s), {self.bytes} bytes" + (f": {items}" if items else "")

    # the hooks
    def pack(self, tensor: torch.Tensor) -> Packed:
        self.shapes.append(tuple(tensor.shape))
        self.dtypes.append(tensor.dtype)
        self.sizes.append(tensor_bytes(tensor))
        base = tensor._base if tensor._base is not None else tensor
        self.intermediate.append(not base.is_leaf)
        holder = Packed(tensor.detach())
        self._holders.append(weakref.ref(holder))
        return holder

    def unpack(self, holder: Packed) -> torch.Tensor:
        if self.unpack_scale == 1.0:
            return holder.tensor
        return holder.tensor * self.unpack_scale


@contextmanager
def record_saved_tensors(*, unpack_scale: float = 1.0) -> Iterator[SavedTensorLog]:
    """Record the tensors saved for backward by operations run inside the block."""
    log = SavedTensorLog(unpack_scale=unpack_scale)
    with torch.autograd.graph.saved_tensors_hooks(log.pack, log.unpack):
        yield log


# Operations whose gradient formula saves a tensor, for tests that modify it in
# place.  Sources name the operand ``t``; torch is looked up when one runs.

#: operations that save their input for backward: source -> operation
SAVES_INPUT = {
    "t * t": lambda t: t * t,
    "torch.sin(t)": lambda t: torch.sin(t),
    "t.cos()": lambda t: t.cos(),
    "t ** 2": lambda t: t**2,
    "t ** 3": lambda t: t**3,
    "torch.abs(t)": lambda t: torch.abs(t),
}

#: operations that save their output for backward: source -> operation
SAVES_OUTPUT = {
    "t.exp()": lambda t: t.exp(),
    "torch.tanh(t)": lambda t: torch.tanh(t),
    "t.sigmoid()": lambda t: t.sigmoid(),
}


def saved_tensor_modified(forward, write) -> bool:
    """Run ``forward()`` recording what autograd saves, then ``write(result)``; tell whether the version of a saved tensor moved.

    An oracle for whether a write touches what backward needs.  Use a separate
    run from the one checked: with saved-tensor hooks installed, torch does not
    check versions at backward.
    """
    with record_saved_tensors() as log:
        result = forward()
    saved = log.saved()
    versions = [tensor._version for tensor in saved]
    write(result)
    return any(tensor._version != version for tensor, version in zip(saved, versions))


__all__ += ["SAVES_INPUT", "SAVES_OUTPUT", "saved_tensor_modified"]

#: graphs that save nothing for backward (sums, additions of tensors, views of the operand):
#: source -> operation; a second backward through them needs no retain_graph (BWD-4)
SAVES_NOTHING = {
    "t.sum()": lambda t: t.sum(),
    "(t + t).sum()": lambda t: (t + t).sum(),
    "torch.add(t, t).sum()": lambda t: torch.add(t, t).sum(),
    "t.view(-1).sum()": lambda t: t.view(-1).sum(),
    "t.expand(2, *t.shape).sum()": lambda t: t.expand(2, *t.shape).sum(),
    "t.t().sum()": lambda t: t.t().sum(),
}

__all__ += ["SAVES_NOTHING"]
