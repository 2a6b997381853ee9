"""Ways to create a tensor from nothing: factory functions and their ``*_like`` / ``new_*`` relatives.

Each entry is the call a user writes, so tests can check what every creation
function documents (REQGRAD-1..3, LEAF-1) rather than just ``torch.zeros``.
:func:`create` and :func:`create_like` make the call through an execution mode
(``conformance/testlib/modes.py``): in a compiled mode the creation runs inside a
compiled function, as when a user creates tensors in code they ``torch.compile``.
"""

from __future__ import annotations

import warnings

import torch

from .modes import EAGER, Mode

__all__ = ["DEFAULT_ONLY_FACTORIES", "FACTORIES", "LIKE_FACTORIES", "REQUIRES_GRAD_FACTORIES", "create", "create_like"]

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


def _copy_construct(source: torch.Tensor) -> torch.Tensor:
    return torch.tensor(source)


def _tensor_from_a_tensor_requiring_grad(s, d, dev, mode: Mode = Mode(EAGER)):
    """``torch.tensor(t)`` copies ``t``'s values, not its autograd state (torch 0.4.1 recorded the copy: pytorch/pytorch#10876).

    ``t`` is made before the copy, outside any compiled function (dynamo does not compile creating a tensor that
    requires grad); the copy runs in ``mode``.
    """
    source = torch.ones(s, dtype=d, device=dev, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "To copy construct from a tensor, it is recommended to use ..."
        return mode.run(_copy_construct, source)


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


def create(name: str, shape, dtype: torch.dtype, device, *, mode: Mode = Mode(EAGER), **kwargs) -> torch.Tensor:
    """Call the creation form ``name`` (of :data:`FACTORIES` or :data:`DEFAULT_ONLY_FACTORIES`) in ``mode``:
    the call is compiled in a compiled mode (``torch.tensor(t)``'s ``t`` is made before it, outside)."""
    if DEFAULT_ONLY_FACTORIES.get(name) is _tensor_from_a_tensor_requiring_grad:
        return _tensor_from_a_tensor_requiring_grad(shape, dtype, device, mode=mode)
    make = FACTORIES[name] if name in FACTORIES else DEFAULT_ONLY_FACTORIES[name]
    return mode.run(lambda: make(shape, dtype, device, **kwargs))


def create_like(name: str, source: torch.Tensor, *, mode: Mode = Mode(EAGER), **kwargs) -> torch.Tensor:
    """Call the creation form ``name`` (of :data:`REQUIRES_GRAD_FACTORIES`) for a tensor of ``source``'s shape, dtype
    and device, in ``mode`` (compiled in a compiled mode; a ``*_like`` / ``new_*`` form takes ``source`` as its argument)."""
    if name in LIKE_FACTORIES:
        make_like = LIKE_FACTORIES[name]
        return mode.run(lambda x: make_like(x, **kwargs), source)
    make = FACTORIES[name]
    shape, dtype, device = tuple(source.shape), source.dtype, source.device
    return mode.run(lambda: make(shape, dtype, device, **kwargs))
