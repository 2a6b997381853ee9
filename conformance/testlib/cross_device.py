"""One drawn program run on two devices, recorded action by action, for cross-device comparisons.

A :class:`Program` is a random graph (``graphs.py``) followed by in-place edits
of some of its values (``inplace_ops.py``) and two backward passes of a
weighted sum of every value that requires grad, the second without
``retain_graph``.  :func:`run_program` runs it on fresh leaves holding the
graph's values on one device and returns its :class:`Record` list: per action,
the type of the exception it raised, or what autograd recorded on the value it
produced or wrote (``requires_grad``, ``is_leaf``, the ``grad_fn`` class name,
``_version``, the device) with the value itself; per backward pass, each leaf's
gradient and its device.  Running the same program on ``cpu`` and on the device
under test gives two record lists the tests compare (specs/cross_device.md).

:func:`run_across_devices` runs a graph with its leaves and steps spread over
two devices, moving every operand to its step's device with ``.to()``.

Both take a ``mode`` (``testlib/modes.py``).  In a compiled mode the user
program runs through ``torch.compile``, piece by piece as :func:`run_program`
records it: the graph's steps as one compiled program, each in-place edit as a
compiled function of its target; the loss (the weighted sum, harness code) and
the backward passes run eagerly through their outputs (backward is not
compiled).  A compiled piece that raises is recorded under its action, as in
eager.  :func:`run_across_devices` compiles the whole mixed-device graph with
its loss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
from hypothesis import strategies as st

from .graphs import Graph, graphs
from .inplace_ops import DETERMINISTIC_FORMS, InPlaceForm
from .modes import EAGER, Mode

__all__ = [
    "Edit",
    "Program",
    "Record",
    "TOLERANCES",
    "close_enough",
    "grad_fn_name",
    "loss_weights",
    "program_across_devices",
    "programs",
    "run_across_devices",
    "run_program",
    "weighted_loss",
]

#: Relative tolerance per dtype for values and gradients computed on two devices; the absolute
#: tolerance is the same figure times the largest finite magnitude of the CPU's tensor (at least 1),
#: so a difference of reduction order in large intermediate values is not mistaken for a wrong result.
TOLERANCES = {torch.float32: 1e-4, torch.float64: 1e-9, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def close_enough(actual: torch.Tensor, expected: torch.Tensor) -> Optional[str]:
    """None when ``actual`` equals ``expected`` within the dtype's tolerance (NaNs equal), else why not."""
    actual, expected = actual.detach().cpu(), expected.detach().cpu()
    tol = TOLERANCES.get(expected.dtype, 1e-4)
    finite = expected[torch.isfinite(expected)].abs()
    scale = max(1.0, float(finite.max())) if finite.numel() else 1.0
    try:
        torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale, equal_nan=True)
    except AssertionError as exc:
        return str(exc)
    return None


def grad_fn_name(tensor: torch.Tensor) -> Optional[str]:
    return None if tensor.grad_fn is None else type(tensor.grad_fn).__name__


def loss_weights(value: torch.Tensor) -> torch.Tensor:
    """A fixed tensor of ``value``'s shape, dtype and device, distinct per element: each element's weight in the loss."""
    return torch.linspace(-1, 1, value.numel(), dtype=value.dtype, device=value.device).reshape(value.shape)


def weighted_loss(values: Sequence[torch.Tensor], *, on: str | torch.device | None = None) -> torch.Tensor:
    """``sum((v * w).sum())`` over the values that require grad (moved ``.to(on)`` first when given)."""
    parts = [(v * loss_weights(v)).sum() for v in values if v.requires_grad]
    if on is not None:
        parts = [p.to(on) for p in parts]
    return sum(parts[1:], parts[0])


@dataclass(frozen=True)
class Edit:
    """``form`` (an in-place form, with its tensor named ``t``) applied to the graph's value ``t<target>``."""

    target: int
    form: InPlaceForm

    def source(self) -> str:
        return re.sub(r"\bt\b", f"t{self.target}", self.form.source)


@dataclass
class Program:
    graph: Graph
    edits: tuple[Edit, ...]

    LOSS = "loss = sum((v * w).sum() for every value v that requires grad)"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis prints draws with this
        printer.text(repr(self))

    def __repr__(self) -> str:
        lines = repr(self.graph).splitlines()[1:]
        lines += [f"    {edit.source()}" for edit in self.edits]
        lines += [f"    {self.LOSS}", "    loss.backward()", "    loss.backward()  # again, without retain_graph"]
        return "Program:\n" + "\n".join(lines)


@st.composite
def programs(draw, *, min_edits: int = 0, max_edits: int = 2, **graph_options) -> Program:
    """A recorded graph (``graphs(recording=True, ...)`` on the CPU) and ``min_edits``..``max_edits`` in-place edits of its values."""
    graph = draw(graphs(recording=True, **graph_options), label="graph")
    n_edits = draw(st.integers(min_edits, max_edits), label="number of in-place edits")
    edits = tuple(
        Edit(
            draw(st.integers(0, graph.n_values - 1), label=f"edit {i} target"),
            DETERMINISTIC_FORMS[draw(st.sampled_from(sorted(DETERMINISTIC_FORMS)), label=f"edit {i} form")],
        )
        for i in range(n_edits)
    )
    return Program(graph, edits)


@dataclass(frozen=True)
class Record:
    """What one action of a program did on one device."""

    action: str
    error: Optional[str] = None  # the type name of the exception it raised
    requires_grad: Optional[bool] = None
    is_leaf: Optional[bool] = None
    grad_fn: Optional[str] = None
    version: Optional[int] = None
    device: Optional[torch.device] = None
    value: Optional[torch.Tensor] = field(default=None, compare=False)  # a detached CPU copy
    grads: Optional[tuple[Optional[torch.Tensor], ...]] = field(default=None, compare=False)  # per leaf, CPU copies
    grad_devices: Optional[tuple[Optional[torch.device], ...]] = None


def _describe(action: str, tensor: torch.Tensor) -> Record:
    return Record(
        action,
        requires_grad=tensor.requires_grad,
        is_leaf=tensor.is_leaf,
        grad_fn=grad_fn_name(tensor),
        version=tensor._version,
        device=tensor.device,
        value=tensor.detach().cpu().clone(),
    )


def _fresh_leaves(leaves: Sequence[torch.Tensor], devices: Sequence[str | torch.device]) -> list[torch.Tensor]:
    """New leaves holding ``leaves``' values on ``devices``, requiring grad as they do."""
    return [leaf.detach().to(device).clone().requires_grad_(leaf.requires_grad) for leaf, device in zip(leaves, devices)]


def _grads_record(action: str, leaves: Sequence[torch.Tensor]) -> Record:
    grads = tuple(None if leaf.grad is None else leaf.grad.detach().cpu().clone() for leaf in leaves)
    devices = tuple(None if leaf.grad is None else leaf.grad.device for leaf in leaves)
    return Record(action, grads=grads, grad_devices=devices)


def _graph_records(graph: Graph, values: list[torch.Tensor], mode: Mode) -> tuple[list[Record], bool]:
    """Run the graph's steps on ``values`` (its leaves; outputs are appended): per step a :class:`Record`, and
    whether every step ran.  Eagerly a step that raises ends the run; compiled, the steps are one program
    whose error is recorded under the action naming them all."""
    n_leaves = len(graph.leaves)
    actions = [f"t{n_leaves + index} = {graph.source(index)}" for index in range(len(graph.steps))]
    if mode.compiled:
        try:
            outputs = mode.run(graph.program, *values)
        except Exception as exc:  # noqa: BLE001 - recorded for comparison
            return [Record(f"the compiled steps ({mode}): " + "; ".join(actions), error=type(exc).__name__)], False
        values.extend(outputs)
        return [_describe(action, output) for action, output in zip(actions, outputs)], True
    records = []
    for step, action in zip(graph.steps, actions):
        try:
            output = step.form(*(values[i] for i in step.operands))
        except Exception as exc:  # noqa: BLE001 - recorded for comparison
            records.append(Record(action, error=type(exc).__name__))
            return records, False
        values.append(output)
        records.append(_describe(action, output))
    return records, True


def run_program(program: Program, device: str | torch.device, *, mode: Mode = Mode(EAGER)) -> list[Record]:
    """Run ``program`` on fresh leaves on ``device`` in ``mode``; one :class:`Record` per action (see the module docstring).

    A graph step that raises ends the run (later steps have no operand); an
    edit or a backward pass that raises is recorded and the run goes on.
    """
    graph = program.graph
    values = _fresh_leaves(graph.leaves, [device] * len(graph.leaves))
    records = [_describe(f"t{i} (leaf)", leaf) for i, leaf in enumerate(values)]
    step_records, completed = _graph_records(graph, values, mode)
    records += step_records
    if not completed:
        return records
    for edit in program.edits:
        target = values[edit.target]
        try:
            mode.run(edit.form.apply, target)
        except Exception as exc:  # noqa: BLE001 - recorded for comparison
            records.append(Record(edit.source(), error=type(exc).__name__))
            continue
        records.append(_describe(edit.source(), target))
    if program.edits:
        records += [_describe(f"t{i} after the edits", value) for i, value in enumerate(values)]
    leaves = values[: len(graph.leaves)]
    try:
        loss = weighted_loss(values)
    except Exception as exc:  # noqa: BLE001 - recorded for comparison
        records.append(Record(program.LOSS, error=type(exc).__name__))
        return records
    records.append(_describe(program.LOSS, loss))
    for attempt in ("loss.backward()", "loss.backward() again, without retain_graph"):
        try:
            loss.backward()
        except Exception as exc:  # noqa: BLE001 - recorded for comparison
            records.append(Record(attempt, error=type(exc).__name__))
            continue
        records.append(_grads_record(attempt, leaves))
    return records


def program_across_devices(
    graph: Graph, step_devices: Sequence[str], *, loss_on: str | torch.device | None = None
) -> Callable[..., tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
    """The graph as a plain function of its leaves, each step on its ``step_devices`` entry: every operand is
    moved there with ``.to()`` (a no-op when it is there already).  It returns every step's output and their
    :func:`weighted_loss` (moved ``.to(loss_on)`` when given)."""
    devices = tuple(step_devices)

    def program(*leaves: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        values = list(leaves)
        for step, device in zip(graph.steps, devices):
            values.append(step.form(*(values[i].to(device) for i in step.operands)))
        outputs = tuple(values[len(leaves):])
        return outputs, weighted_loss(outputs, on=loss_on)

    return program


def run_across_devices(
    graph: Graph,
    leaf_devices: Sequence[str],
    step_devices: Sequence[str],
    *,
    loss_on: str | torch.device | None = None,
    mode: Mode = Mode(EAGER),
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Run ``graph`` on fresh leaves placed on ``leaf_devices``, each step on its ``step_devices`` entry, in ``mode``
    (:func:`program_across_devices`, compiled whole in a compiled mode).

    Returns ``(leaves, values, loss)``: values being every step's output, loss their :func:`weighted_loss`.
    """
    leaves = _fresh_leaves(graph.leaves, leaf_devices)
    values, loss = mode.run(program_across_devices(graph, step_devices, loss_on=loss_on), *leaves)
    return leaves, list(values), loss
