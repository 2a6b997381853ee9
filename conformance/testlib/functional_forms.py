"""References for the functional API and torch.func (specs/functional.md): derivatives computed with
``torch.autograd.grad`` one row at a time, eagerly, so that a transform under test is compared with autograd
itself and never with another transform.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from hypothesis import strategies as st

from .graphs import Graph, graphs
from .ops import OPS

__all__ = [
    "VMAPPABLE_OPS",
    "contract",
    "draw_output_of",
    "fresh",
    "functional_graphs",
    "jacobian_rows",
    "hessian_rows",
    "output_of",
    "scalar_of",
]

#: ops whose output shape does not depend on the values: ``vmap`` (and so ``jacrev``/``jacfwd``, the
#: vectorized functional API) can batch them
VMAPPABLE_OPS = tuple(op for op in OPS if op.name != "masked_select")


def functional_graphs(device, mode, *, max_leaves: int = 2, ops=VMAPPABLE_OPS):
    """Small float64 programs for the transforms: every leaf a plain input (the transforms set requires_grad)."""
    return graphs(
        device=device,
        dtype=torch.float64,
        requires_grad=False,
        max_leaves=max_leaves,
        max_steps=4,
        ops=ops,
        base_shape=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
        mode=mode,
    )


def output_of(graph: Graph, every: bool = False) -> Callable[..., torch.Tensor]:
    """The program as a function of its leaves, returning its last value, or with ``every`` the sines of its
    leaves and all its values, flattened and concatenated: a vector output whose Jacobian has many rows, the
    first ones (``diag(cos(leaf))``) all different, so a transform that mixes up rows or dimensions shows."""

    def program(*leaves):
        return graph.program(*leaves)[-1]

    def program_values(*leaves):
        values = [leaf.sin() for leaf in leaves] + list(graph.program(*leaves))
        return torch.cat([value.reshape(-1) for value in values])

    return program_values if every else program


def draw_output_of(data, graph: Graph) -> Callable[..., torch.Tensor]:
    """:func:`output_of` with ``every`` drawn, where the last value has elements (a function with an empty
    output is checked by tests of its own: ``jacobian`` raises on one, FUNCTIONAL-1)."""
    if graph.program(*graph.leaves)[-1].numel() == 0:
        return output_of(graph, every=True)
    every = data.draw(st.booleans(), label="the function returns every value of the program, flattened (else the last)")
    return output_of(graph, every)


def scalar_of(graph: Graph) -> Callable[..., torch.Tensor]:
    """A scalar loss of the program: the sum of the sines of :func:`output_of` with ``every`` (nonlinear, so
    second derivatives exist; every leaf enters it, so no gradient is zero by construction)."""
    values = output_of(graph, every=True)

    def loss(*leaves):
        return values(*leaves).sin().sum()

    return loss


def fresh(tensors: Sequence[torch.Tensor], requires_grad: bool = True) -> list[torch.Tensor]:
    """Detached copies of ``tensors`` (leaves of a new graph)."""
    return [t.detach().clone().requires_grad_(requires_grad) for t in tensors]


def _grads(output: torch.Tensor, inputs: Sequence[torch.Tensor], **kwargs) -> list[torch.Tensor]:
    if not output.requires_grad:
        return [torch.zeros_like(x) for x in inputs]
    grads = torch.autograd.grad(output, inputs, allow_unused=True, retain_graph=True, **kwargs)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]


def jacobian_rows(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """For each input, the Jacobian of ``fn(*inputs)`` (shape ``output.shape + input.shape``), eagerly, one
    ``torch.autograd.grad`` call per output element."""
    xs = fresh(inputs)
    out = fn(*xs)
    flat = out.reshape(-1)
    rows = [_grads(flat[k], xs) for k in range(flat.numel())]
    return [
        torch.stack([row[i] for row in rows]).reshape(out.shape + x.shape) if rows else x.new_zeros(out.shape + x.shape)
        for i, x in enumerate(xs)
    ]


def hessian_rows(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
    """``H[i][j]`` of the scalar ``fn(*inputs)`` (shape ``inputs[i].shape + inputs[j].shape``): the gradient
    with create_graph=True, then one ``torch.autograd.grad`` call per element of it."""
    xs = fresh(inputs)
    out = fn(*xs)
    first = _grads(out, xs, create_graph=True)
    hessian = []
    for i, g in enumerate(first):
        flat = g.reshape(-1)
        rows = [_grads(flat[k], xs) for k in range(flat.numel())]
        hessian.append([
            torch.stack([row[j] for row in rows]).reshape(xs[i].shape + x.shape) if rows else x.new_zeros(xs[i].shape + x.shape)
            for j, x in enumerate(xs)
        ])
    return hessian


def contract(jacobian: torch.Tensor, v: torch.Tensor, *, left: bool) -> torch.Tensor:
    """``v^T J`` (``left``: v over the output dims, the leading ones) or ``J v`` (v over the trailing input dims)."""
    if left:
        return torch.tensordot(v, jacobian, dims=v.dim()) if v.dim() else v * jacobian
    return torch.tensordot(jacobian, v, dims=v.dim()) if v.dim() else jacobian * v
