"""Random computation graphs over the op registry.

A :class:`Graph` is a small straight-line program: leaf tensors ``t0..tk`` and a
sequence of steps, each applying one op form to earlier values.  It can be run
again on its leaves, or on fresh leaves holding the same values (shapes of some
steps, such as ``masked_select``, depend on the values), and prints as the
Python it executes::

    t0 = <leaf float64 (2, 3) requires_grad=True>
    t1 = <leaf float64 (3,) requires_grad=False>
    t2 = torch.sin(t0)
    t3 = t2 * t1
    t4 = t3.sum(-1, keepdim=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from .modes import EAGER, Mode
from .ops import OPS, Op, OpForm
from .strategies import REAL_DTYPES, as_strategy, broadcastable_shapes, shapes, tensors

__all__ = ["GRAPH_DTYPES", "Graph", "Step", "aliases_an_operand", "graphs", "recorded_leaves", "unrelated_leaves"]

#: Dtypes random graphs are drawn in: every registry op supports them on every
#: device and torch version the suite targets (half precision CPU kernels were
#: incomplete before torch 2.x, so they are exercised by dedicated tests instead).
GRAPH_DTYPES = REAL_DTYPES


@dataclass(frozen=True)
class Step:
    form: OpForm
    operands: tuple[int, ...]  # indices into the graph's values (leaves first)


@dataclass(frozen=True)
class StepResult:
    step: Step
    inputs: tuple[torch.Tensor, ...]
    output: torch.Tensor
    source: str


@dataclass
class Graph:
    leaves: list[torch.Tensor]
    steps: list[Step]

    @property
    def n_values(self) -> int:
        return len(self.leaves) + len(self.steps)

    def name(self, index: int) -> str:
        return f"t{index}"

    def source(self, step_index: int) -> str:
        step = self.steps[step_index]
        return step.form.source(*(self.name(i) for i in step.operands))

    def program(self, *leaves: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The program as a plain function: every step's output, in order.  This is what a compiled mode
        compiles (alone, or inside a larger user program; :meth:`results` pairs its outputs with the steps)."""
        values = list(leaves)
        for step in self.steps:
            values.append(step.form(*[values[i] for i in step.operands]))
        return tuple(values[len(leaves):])

    def results(self, outputs: Sequence[torch.Tensor], leaves: Sequence[torch.Tensor] | None = None) -> list[StepResult]:
        """Each step with its inputs and output, from the outputs :meth:`program` returned for ``leaves``."""
        values = list(self.leaves if leaves is None else leaves)
        n_leaves = len(values)
        values += list(outputs)
        return [
            StepResult(step, tuple(values[i] for i in step.operands), values[n_leaves + index], self.source(index))
            for index, step in enumerate(self.steps)
        ]

    def trace(self, leaves: Sequence[torch.Tensor] | None = None, *, mode: Mode = Mode(EAGER)) -> Iterator[StepResult]:
        """Run the program (in the current grad mode), yielding each step with its inputs and output.

        In a compiled ``mode`` the whole program is compiled and called once, at the first step.
        """
        values = list(self.leaves if leaves is None else leaves)
        if mode.compiled:
            yield from self.results(mode.run(self.program, *values), values)
            return
        for index, step in enumerate(self.steps):
            inputs = tuple(values[i] for i in step.operands)
            output = step.form(*inputs)
            values.append(output)
            yield StepResult(step, inputs, output, self.source(index))

    def run(self, leaves: Sequence[torch.Tensor] | None = None, *, mode: Mode = Mode(EAGER)) -> list[torch.Tensor]:
        """All values: the leaves followed by every step's output."""
        values = list(self.leaves if leaves is None else leaves)
        values.extend(result.output for result in self.trace(values, mode=mode))
        return values

    def output(self, leaves: Sequence[torch.Tensor] | None = None, *, mode: Mode = Mode(EAGER)) -> torch.Tensor:
        return self.run(leaves, mode=mode)[-1]

    def leaves_behind(self, index: int) -> frozenset[int]:
        """Indices of the leaves the value ``t<index>`` was computed from (by the program's structure)."""
        if index < len(self.leaves):
            return frozenset({index})
        step = self.steps[index - len(self.leaves)]
        return frozenset().union(*(self.leaves_behind(i) for i in step.operands))

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis prints draws with this
        printer.text(repr(self))

    def __repr__(self) -> str:
        lines = [
            f"{self.name(i)} = <leaf {str(t.dtype).replace('torch.', '')} {tuple(t.shape)} "
            f"requires_grad={t.requires_grad} device={t.device}>"
            for i, t in enumerate(self.leaves)
        ]
        lines += [f"{self.name(len(self.leaves) + i)} = {self.source(i)}" for i in range(len(self.steps))]
        return "Graph:\n    " + "\n    ".join(lines)


@st.composite
def graphs(
    draw,
    *,
    device: str | SearchStrategy[str] = "cpu",
    dtype: torch.dtype | SearchStrategy[torch.dtype] = st.sampled_from(GRAPH_DTYPES),
    requires_grad: bool | SearchStrategy[bool] = st.booleans(),
    recording: bool = False,
    computes: bool = False,
    min_leaves: int = 1,
    max_leaves: int = 3,
    min_steps: int = 1,
    max_steps: int = 6,
    ops: Sequence[Op] = OPS,
    base_shape: tuple[int, ...] | SearchStrategy[tuple[int, ...]] = shapes(max_dims=3, max_side=4),
    mode: Mode = Mode(EAGER),
    unrelated_leaf: bool = False,
) -> Graph:
    """A random program over ``ops``; leaves share one dtype and broadcast to a common shape.

    ``requires_grad`` is drawn per leaf when given as a strategy.  With
    ``recording=True`` the program is one grad mode would record: one drawn
    leaf requires grad whatever ``requires_grad`` says, and the first step
    consumes a leaf that requires grad (every registry op is differentiable, so
    in grad mode that step gets a ``grad_fn``).  In a compiled ``mode`` only ops
    that compile into one graph are drawn (an example with a graph break checks
    eager code: its test would be reported ``not compiled``).  Tests of what a mode does to
    recording need this: a program on leaves that do not require grad records
    nothing in any mode, so it could not fail.  With ``computes=True`` the last
    step computes a new tensor: neither a view nor one of its operands returned
    as is (what clauses about "new results" speak of).

    With ``unrelated_leaf=True`` (at least 2 leaves and 2 steps) the program has
    a leaf that requires grad and that the last step's output was not computed
    from, but that another value was: one drawn leaf, made to require grad,
    is the first operand of step 0, which computes a new tensor from it; the
    last step computes a new tensor (as with ``computes``) from values none of
    which was computed from that leaf, one of them computed from (or being)
    another drawn leaf that is made to require grad, so the output is recorded.
    Tests of "exactly the leaves it was computed from" need this: without such
    a leaf, a torch linking an output to every leaf of its program (as one
    compiled region's backward node does under AOTAutograd) passes.
    :func:`unrelated_leaves` names those leaves of a graph.
    """
    if unrelated_leaf and (max_leaves < 2 or max_steps < 2):
        raise ValueError(f"unrelated_leaf=True needs at least 2 leaves and 2 steps, got max_leaves={max_leaves}, max_steps={max_steps}")
    if mode.compiled:
        ops = [op for op in ops if op.compiles_whole]
    dtype_ = draw(as_strategy(dtype), label="graph dtype")
    device_ = draw(as_strategy(device), label="device")
    base = draw(as_strategy(base_shape), label="graph base shape")
    n_leaves = draw(st.integers(max(min_leaves, 2) if unrelated_leaf else min_leaves, max_leaves), label="number of leaves")
    anchor = draw(st.integers(0, n_leaves - 1), label="leaf that requires grad") if recording else None
    unrelated = related = None
    if unrelated_leaf:
        unrelated = draw(st.integers(0, n_leaves - 1), label="leaf the output is not computed from (requires grad)")
        related = draw(st.sampled_from([i for i in range(n_leaves) if i != unrelated]), label="leaf the output is computed from (requires grad)")
    leaves = [
        draw(
            tensors(dtype=dtype_, shape=broadcastable_shapes(base), device=device_, requires_grad=True if i in (anchor, unrelated, related) else requires_grad),
            label=f"leaf t{i}",
        )
        for i in range(n_leaves)
    ]
    graph = Graph(leaves, [])
    # Shapes of later steps are found by running each drawn step on detached copies.
    values = [leaf.detach() for leaf in leaves]
    behind = [frozenset({i}) for i in range(n_leaves)]  # unrelated_leaf: the leaves each value is computed from
    n_steps = draw(st.integers(max(min_steps, 2) if unrelated_leaf else min_steps, max_steps), label="number of steps")
    for step_index in range(n_steps):
        last_apart = unrelated_leaf and step_index == n_steps - 1  # computed from values none of which comes from `unrelated`
        if unrelated_leaf and step_index == 0:
            first = unrelated
        elif last_apart:
            apart = [i for i in range(len(values)) if unrelated not in behind[i] and any(leaves[j].requires_grad for j in behind[i])]
            first = draw(st.sampled_from(apart), label=f"step {step_index} first operand (not computed from t{unrelated})")
        elif recording and step_index == 0:
            first = draw(st.sampled_from([i for i, leaf in enumerate(leaves) if leaf.requires_grad]), label="step 0 first operand (requires grad)")
        else:
            first = draw(st.integers(0, len(values) - 1), label=f"step {step_index} first operand")
        candidates = [op for op in ops if op.applicable(values[first])]
        new_result_forms = None
        if (computes and step_index == n_steps - 1) or (unrelated_leaf and step_index in (0, n_steps - 1)):
            new_result_forms = {op.name: _forms_computing_anew(op, values[first]) for op in candidates}
            candidates = [op for op in candidates if new_result_forms[op.name]]
        op = draw(st.sampled_from(candidates), label=f"step {step_index} op")
        form = draw(st.sampled_from(new_result_forms[op.name] if new_result_forms else op.forms), label=f"step {step_index} form")
        operands: tuple[int, ...] = (first,)
        if op.arity == 2:
            partners = [i for i, v in enumerate(values) if op.partner(values[first], v) and not (last_apart and unrelated in behind[i])]
            operands += (draw(st.sampled_from(partners), label=f"step {step_index} second operand"),)
        values.append(form(*(values[i] for i in operands)))
        behind.append(frozenset().union(*(behind[i] for i in operands)))
        graph.steps.append(Step(form, operands))
    return graph


def unrelated_leaves(graph: Graph, index: int | None = None) -> list[int]:
    """Indices of the leaves that require grad, that ``t<index>`` (default: the last value) was not computed from,
    and that another step's output was computed from (what ``graphs(unrelated_leaf=True)`` guarantees one of)."""
    index = graph.n_values - 1 if index is None else index
    behind_value = graph.leaves_behind(index)
    feeding = frozenset().union(*(graph.leaves_behind(len(graph.leaves) + s) for s in range(len(graph.steps))))
    return [i for i, leaf in enumerate(graph.leaves) if leaf.requires_grad and i not in behind_value and i in feeding]


def aliases_an_operand(result: torch.Tensor, operands: Sequence[torch.Tensor]) -> bool:
    """``result`` is one of ``operands`` returned as is, or a view of one (of its base): it shares their autograd metadata.

    A view of a tensor the op made internally (``einsum`` returns one) is a new tensor.
    """
    bases = {id(t) for t in operands} | {id(t._base) for t in operands if t._base is not None}
    return id(result) in bases or (result._base is not None and id(result._base) in bases)


def _forms_computing_anew(op: Op, first: torch.Tensor) -> tuple[OpForm, ...]:
    """The forms of ``op`` that, on ``first``, return a new tensor (binary ops always do; a unary form is tried)."""
    if op.arity == 2:
        return op.forms
    return tuple(form for form in op.forms if not aliases_an_operand(form(first), (first,)))


def recorded_leaves(tensor: torch.Tensor) -> list[torch.Tensor]:
    """The leaves autograd recorded behind ``tensor``: the ``variable`` of every accumulation node reachable through ``next_functions``."""
    found, seen, stack = [], set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):  # an AccumulateGrad node
            found.append(node.variable)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found
