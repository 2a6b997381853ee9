"""Recorder hooks and drawn programs for the backward-hook execution clauses (HOOK-15..23, specs/hooks.md).

A :class:`Recorder` is one list of events, appended to by hooks of every kind in the order torch calls them;
the tests read the order and what each hook saw from it.  :func:`run_program` runs a drawn graph as the user
program (compiled whole in a compiled mode) and names the values hooks may go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from .graphs import Graph
from .modes import Mode

__all__ = ["Event", "Recorder", "depends_on", "reachable_nodes", "run_program"]


@dataclass
class Event:
    kind: str  # "tensor", "pre", "post", "post-accumulate", "multi", ...
    index: Any  # which hooked value (an index into the program's values) or other key
    seen: dict = field(default_factory=dict)  # what the hook saw (cloned tensors, flags)


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)

    def add(self, kind: str, index: Any, **seen: Any) -> None:
        self.events.append(Event(kind, index, {k: _snapshot(v) for k, v in seen.items()}))

    def of(self, index: Any, kind: Optional[str] = None) -> list[tuple[int, Event]]:
        """(position, event) for every event of ``index`` (of ``kind``), in call order."""
        return [(i, e) for i, e in enumerate(self.events) if e.index == index and (kind is None or e.kind == kind)]

    def kinds(self, index: Any) -> list[str]:
        return [e.kind for e in self.events if e.index == index]

    def __repr__(self) -> str:
        return "calls: " + ", ".join(f"{e.kind}(t{e.index})" if isinstance(e.index, int) else f"{e.kind}({e.index})" for e in self.events)


def _snapshot(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_snapshot(v) for v in value)
    return value


def reachable_nodes(tensor: torch.Tensor) -> set:
    """Every autograd node reachable from ``tensor.grad_fn`` (itself included; AccumulateGrad nodes of leaves too)."""
    seen: set = set()
    stack = [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return seen


def depends_on(later: torch.Tensor, earlier: torch.Tensor) -> bool:
    """``later`` was computed (through recorded operations) from ``earlier``, or is it."""
    if later is earlier:
        return True
    nodes = reachable_nodes(later)
    if earlier.grad_fn is not None:
        return earlier.grad_fn in nodes
    return any(getattr(node, "variable", None) is earlier for node in nodes)


def run_program(graph: Graph, mode: Mode) -> tuple[list[torch.Tensor], list[int]]:
    """The user program's values and the indices of its non-leaf values that hooks go on.

    Eager: every value (leaves first), hooks on every non-leaf value with its own tensor object and its own
    ``grad_fn``.  Compiled: the program is compiled whole and returns only its last value (a function keeps its
    temporaries); the values are the leaves and that result, and hooks go on that result.
    """
    n = len(graph.leaves)
    if mode.compiled:
        out = mode.run(lambda *leaves: graph.program(*leaves)[-1], *graph.leaves)
        values = list(graph.leaves) + [out]
    else:
        values = graph.run()
    hookable, objects, nodes = [], set(), set()
    for index in range(n, len(values)):
        value = values[index]
        if value.grad_fn is None or id(value) in objects or value.grad_fn in nodes:
            continue
        objects.add(id(value))
        nodes.add(value.grad_fn)
        hookable.append(index)
    return values, hookable


def output_nr_replaced(grads: Sequence[Optional[torch.Tensor]], nr: int, factor: float) -> tuple:
    """``grads`` with entry ``nr`` multiplied by ``factor``."""
    return tuple(g * factor if i == nr and g is not None else g for i, g in enumerate(grads))
