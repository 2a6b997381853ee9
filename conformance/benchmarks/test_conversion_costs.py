"""Getting values out of the graph: ``.numpy()`` in both orders, ``.item()``, ``.data`` versus ``detach()``.

The seed (000_11918659c5b97dba.txt) times 10,000 calls of
``y.cpu().detach().numpy()`` and of ``y.detach().cpu().numpy()`` and finds them
about equal; on the CPU both are views (XFER-1, XFER-7), on an accelerator both
copy once.  ``item()`` works the same whether or not the tensor requires grad
(XFER-9).  ``.data`` and ``detach()`` both alias the storage without copying
(DETACH-1): they should cost about the same.
"""

from __future__ import annotations

import pytest
import torch

#: The seed's 3x3, then sizes where a device copy dominates.
SHAPES = [(3, 3), (256, 256), (1024, 1024)]

TO_NUMPY = {
    "y.detach().cpu().numpy()": lambda y: y.detach().cpu().numpy(),
    "y.cpu().detach().numpy()": lambda y: y.cpu().detach().numpy(),
}


@pytest.mark.spec("XFER-1", "XFER-7")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("order", list(TO_NUMPY))
def test_to_numpy(bench, device, shape, order):
    y = torch.rand(shape, device=device, requires_grad=True)
    convert = TO_NUMPY[order]
    bench.compare(f"to numpy {'x'.join(map(str, shape))}", order, baseline="y.detach().cpu().numpy()")(lambda: convert(y))


ITEM_OF = {
    "t.item() (no grad)": lambda device: torch.rand((), device=device),
    "loss.item() (requires grad)": lambda device: (torch.rand(8, device=device, requires_grad=True) ** 2).sum(),
}


@pytest.mark.spec("XFER-9")
@pytest.mark.parametrize("variant", list(ITEM_OF))
def test_item(bench, device, variant):
    tensor = ITEM_OF[variant](device)
    bench.compare("item() of a one-element tensor", variant, baseline="t.item() (no grad)")(tensor.item)


ALIASES = {
    "y.detach()": lambda y: y.detach(),
    "y.data": lambda y: y.data,
}


@pytest.mark.spec("DETACH-1", "DETACH-2")
@pytest.mark.parametrize("alias", list(ALIASES))
def test_alias_without_autograd(bench, device, alias):
    y = torch.rand(256, 256, device=device, requires_grad=True) * 2  # a non-leaf, as in a training loop
    take = ALIASES[alias]
    bench.compare("alias outside the graph (256x256)", alias, baseline="y.detach()")(lambda: take(y))
