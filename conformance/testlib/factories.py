"""Ways to create a tensor from nothing: factory functions and their ``*_like`` / ``new_*`` relatives.

Each entry is the call a user writes, so tests can check what every creation
function documents (REQGRAD-1..3, LEAF-1) rather than just ``torch.zeros``.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["DEFAULT_ONLY_FACTORIES", "FACTORIES", "LIKE_FACTORIES", "REQUIRES_GRAD_FACTORIES", "create_like"]

#: factory name -> call(shape, dtype, device, **kwargs); every documented creation function.
FACTORIES = {
    "zeros": lambda s, d, dev, **kw: torch.zeros(s, dtype=d, device=dev, **kw),
    "ones": lambda s, d, dev, **kw: torch.ones(s, dtype=d, device=dev, **kw),
    "empty": lambda s, d, dev, **kw: torch.empty(s, dtype=d, device=dev, **kw),
    "full": lambda s, d, dev, **kw: torch.full(s, 1, dtype=d, device=dev, **kw),
    "rand": lambda s, d, dev, **kw: torch.rand(s, dtype=d, device=dev, **kw),
    "randn": lambda s, d, dev, **kw: torch.randn(s, dtype=d, device=dev, **kw),
    "arange": lambda s, d, dev, **kw: torch.arange(0, 2 * len(s) + 1, dtype=d, device=dev, **kw),
    "linspace": lambda s, d, dev, **kw: torch.linspace(0, 1, 5, dtype=d, device=dev, **kw),
    "logspace": lambda s, d, dev, **kw: torch.logspace(0, 1, 5, dtype=d, device=dev, **kw),
    "eye": lambda s, d, dev, **kw: torch.eye(3, dtype=d, device=dev, **kw),
    "tensor": lambda s, d, dev, **kw: torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=d, device=dev, **kw),
}
def _tensor_from_a_tensor_requiring_grad(s, d, dev):
    """``torch.tensor(t)`` copies ``t``'s values, not its autograd state (torch 0.4.1 recorded the copy: pytorch/pytorch#10876)."""
    source = torch.ones(s, dtype=d, device=dev, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "To copy construct from a tensor, it is recommended to use ..."
        return torch.tensor(source)


#: factories without a ``requires_grad`` parameter, or that only make integer tensors, or called
#: without it on an input that requires grad (shape and dtype floating point)
DEFAULT_ONLY_FACTORIES = {
    "randint": lambda s, d, dev: torch.randint(0, 5, s, device=dev),
    "as_tensor": lambda s, d, dev: torch.as_tensor([1.0, 2.0], dtype=d, device=dev),
    "tensor(t), t requiring grad": _tensor_from_a_tensor_requiring_grad,
}

#: tensor-from-tensor factories: name -> call(x, **kwargs) (``requires_grad=True`` and the like pass through)
LIKE_FACTORIES = {
    "zeros_like": lambda x, **kw: torch.zeros_like(x, **kw),
    "ones_like": lambda x, **kw: torch.ones_like(x, **kw),
    "empty_like": lambda x, **kw: torch.empty_like(x, **kw),
    "full_like": lambda x, **kw: torch.full_like(x, 3.0, **kw),
    "rand_like": lambda x, **kw: torch.rand_like(x, **kw),
    "randn_like": lambda x, **kw: torch.randn_like(x, **kw),
    "Tensor.new_zeros": lambda x, **kw: x.new_zeros(x.shape, **kw),
    "Tensor.new_ones": lambda x, **kw: x.new_ones(x.shape, **kw),
    "Tensor.new_empty": lambda x, **kw: x.new_empty(x.shape, **kw),
    "Tensor.new_full": lambda x, **kw: x.new_full(x.shape, 3.0, **kw),
    "Tensor.new_tensor": lambda x, **kw: x.new_tensor([1.0, 2.0], **kw),
}

#: every creation form that takes ``requires_grad``: the factories, then the ``*_like`` / ``new_*`` ones
REQUIRES_GRAD_FACTORIES = tuple(sorted(FACTORIES)) + tuple(sorted(LIKE_FACTORIES))


def create_like(name: str, source: torch.Tensor, **kwargs) -> torch.Tensor:
    """Call the creation form ``name`` (of :data:`REQUIRES_GRAD_FACTORIES`) for a tensor of ``source``'s shape, dtype and device."""
    if name in LIKE_FACTORIES:
        return LIKE_FACTORIES[name](source, **kwargs)
    return FACTORIES[name](tuple(source.shape), source.dtype, source.device, **kwargs)
