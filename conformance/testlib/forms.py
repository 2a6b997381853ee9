"""Documented spellings of one action, shared by the tests that must try each of them.

(The forms of entering a grad mode are in ``conformance/testlib/grad_modes.py``.)  torch is
looked up when a form runs, never bound at import, so a patched torch is the one
exercised.
"""

from __future__ import annotations

from typing import Callable, Dict

import torch

__all__ = ["ACCUMULATING_BACKWARD_PASSES", "BACKWARD_PASSES", "FREEZE_MODULE"]

#: A backward pass over ``y`` in every documented spelling: ``BACKWARD_PASSES[name](y, leaves, **kwargs)``
#: (``retain_graph=``, ``create_graph=`` are passed through).
BACKWARD_PASSES: Dict[str, Callable] = {
    "y.backward()": lambda y, leaves, **kw: y.backward(**kw),
    "torch.autograd.backward(y)": lambda y, leaves, **kw: torch.autograd.backward(y, **kw),
    "torch.autograd.grad(y, leaves)": lambda y, leaves, **kw: torch.autograd.grad(y, leaves, allow_unused=True, **kw),
}

#: The spellings of :data:`BACKWARD_PASSES` that accumulate into ``.grad`` (``torch.autograd.grad`` returns the
#: gradients instead); ``inputs=`` is passed through with the other keyword arguments.
ACCUMULATING_BACKWARD_PASSES: Dict[str, Callable] = {
    name: BACKWARD_PASSES[name] for name in ("y.backward()", "torch.autograd.backward(y)")
}

#: Every documented way of freezing all of a module's parameters: ``FREEZE_MODULE[name](module)``.
FREEZE_MODULE: Dict[str, Callable[[torch.nn.Module], object]] = {
    "attribute": lambda module: [setattr(p, "requires_grad", False) for p in module.parameters()],
    "Parameter.requires_grad_": lambda module: [p.requires_grad_(False) for p in module.parameters()],
    "Module.requires_grad_": lambda module: module.requires_grad_(False),
}
