"""Custom ``torch.autograd.Function`` subclasses built around the op registry, and the inputs to apply them to.

Spec: ``specs/custom_function.md``.  Each factory defines a *new* Function class when it is called (at test
time, never at import), so a mutant that patches ``torch.autograd.function`` (``once_differentiable``,
``FunctionCtx`` methods) reaches the classes a test builds.

A wrapping Function computes a registry op form in ``forward`` and, in ``backward``, the op's vector-Jacobian
product (``torch.func.vjp`` where it exists, else ``torch.autograd.grad`` on detached copies) times a drawn
``scale``: a torch that ignored the custom ``backward`` and differentiated the forward instead would give the
unscaled gradient, so the scale tells whose backward ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from hypothesis import strategies as st

from .modes import EAGER, Mode
from .graphs import aliases_an_operand
from .ops import OPS, Op, OpForm
from .strategies import REAL_DTYPES, broadcastable_shapes, shapes, tensors

__all__ = [
    "Application",
    "applications",
    "call_forms",
    "vjp",
    "wrapping",
]

#: how a user calls a Function: its ``apply``, an alias of it (the docs' ``linear = LinearFunction.apply``),
#: or from an ``nn.Module``'s ``forward``
CALL_FORMS = ("Function.apply", "alias = Function.apply", "nn.Module")


def call_forms(function: type, form: str) -> Callable:
    """A plain Python function calling ``function`` in the given call form (what a test compiles)."""
    if form == "Function.apply":
        return lambda *args: function.apply(*args)
    if form == "alias = Function.apply":
        alias = function.apply
        return lambda *args: alias(*args)
    if form == "nn.Module":

        class Wrapper(torch.nn.Module):
            def forward(self, *args):
                return function.apply(*args)

        module = Wrapper()
        return lambda *args: module(*args)
    raise ValueError(form)


def vjp(form: OpForm, inputs: Sequence[torch.Tensor], grad: torch.Tensor) -> tuple:
    """The op's vector-Jacobian product at ``inputs`` with ``grad`` (one gradient per input)."""
    func = getattr(torch, "func", None)
    if func is not None:
        _, pull = func.vjp(form, *inputs)
        return tuple(pull(grad))
    leaves = [x.detach().requires_grad_(True) for x in inputs]  # torch < 2.0: no torch.func
    with torch.enable_grad():
        out = form(*leaves)
    return tuple(g if g is not None else torch.zeros_like(x) for g, x in zip(torch.autograd.grad(out, leaves, grad, allow_unused=True), leaves))


def wrapping(form: OpForm, *, scale: float = 1.0, style: str = "ctx", once: bool = False, reads_saved: bool = False) -> type:
    """A new Function computing ``form`` whose backward returns ``scale`` times the op's vjp.

    ``style="ctx"``: ``forward(ctx, x0[, x1], scale)``; ``style="setup_context"``: ``forward(x0[, x1], scale)`` and a separate
    ``setup_context`` (torch >= 2.0).  In both the Function is applied as ``apply(*xs, scale)`` with the scale
    a non-tensor argument stored on ``ctx``.  ``once=True`` decorates backward with ``once_differentiable``
    (looked up now, so a patched one is used).  ``reads_saved=True``: backward reads the value of every saved
    input (adds ``0 * x`` to its gradient), also where the op's vjp does not need it (``neg``, ``add``, views)."""

    def backward(ctx, grad):
        inputs = ctx.saved_tensors
        grads = tuple(g * ctx.scale for g in vjp(form, inputs, grad))
        if reads_saved:
            grads = tuple(g + 0 * x for g, x in zip(grads, inputs))
        return grads + (None,)

    if once:
        backward = torch.autograd.function.once_differentiable(backward)

    # forward takes its tensors by name, not as *args: dynamo (2.13) calls a `forward(ctx, *args)` without its
    # ctx when no input requires grad, and runs the frame eagerly
    if style == "ctx":

        def setup(ctx, inputs, factor):
            ctx.save_for_backward(*inputs)
            ctx.scale = factor
            return form(*inputs)

        if form.op.arity == 1:

            def forward(ctx, x0, factor):
                return setup(ctx, (x0,), factor)

        else:

            def forward(ctx, x0, x1, factor):
                return setup(ctx, (x0, x1), factor)

        namespace = {"forward": staticmethod(forward)}
    elif style == "setup_context":
        if form.op.arity == 1:

            def forward(x0, factor):
                return form(x0)

        else:

            def forward(x0, x1, factor):
                return form(x0, x1)

        def setup_context(ctx, inputs, output):
            *tensors, factor = inputs
            ctx.save_for_backward(*tensors)
            ctx.scale = factor

        namespace = {"forward": staticmethod(forward), "setup_context": staticmethod(setup_context)}
    else:
        raise ValueError(style)
    namespace["backward"] = staticmethod(backward)
    return type(f"Wrapped_{form.op.name}_{style}", (torch.autograd.Function,), namespace)


def _computing_forms(op: Op, first: torch.Tensor) -> tuple:
    return tuple(form for form in op.forms if not aliases_an_operand(form(first), (first,)))


def _forms_not_returning_the_input(op: Op, first: torch.Tensor) -> tuple:
    return tuple(form for form in op.forms if form(first) is not first)


@dataclass
class Application:
    """A registry op form and the tensors a Function wrapping it is applied to."""

    form: OpForm
    inputs: list[torch.Tensor]

    def __repr__(self) -> str:
        names = [f"x{i}" for i in range(len(self.inputs))]
        lines = [
            f"x{i} = <{str(t.dtype).replace('torch.', '')} {tuple(t.shape)} requires_grad={t.requires_grad} "
            f"leaf={t.grad_fn is None} device={t.device}>"
            for i, t in enumerate(self.inputs)
        ]
        return "\n    ".join(["Application:"] + lines + [f"forward computes {self.form.source(*names)} ({self.form.id})"])


@st.composite
def applications(
    draw,
    *,
    device: str = "cpu",
    mode: Mode = Mode(EAGER),
    requires_grad: str = "any",
    ops: Sequence[Op] = OPS,
    dtype=st.sampled_from(REAL_DTYPES),
    min_side: int = 1,
    max_side: int = 3,
    computes: bool = False,
    arity: int | None = None,
    as_is: bool = True,
) -> Application:
    """An op form and its operands (leaves, small non-empty shapes by default, so every gradient has a value to check).  ``requires_grad``: ``"any"`` (drawn per input),
    ``"some"`` (drawn, at least one input requires grad), ``"one"`` (exactly one, drawn), ``"all"`` or ``"none"``.
    ``arity``: only ops of that many operands.  ``computes=True``: only
    forms that return a new tensor, not an input or a view of one (a Function's output that is a view of its
    input has rules of its own when either is changed in place).  ``as_is=False``: no form that returns its input
    as is (``torch.flatten`` of a 1-d tensor): a setup_context-style Function cannot save such an input for
    backward (torch raises "An input that has been returned as-is as output is being saved for backward")."""
    if mode.compiled:
        ops = [op for op in ops if op.compiles_whole]
    if arity is not None:
        ops = [op for op in ops if op.arity == arity]
    dtype_ = draw(dtype, label="dtype")
    base = draw(shapes(max_dims=3, min_side=min_side, max_side=max_side), label="base shape")
    first = draw(tensors(dtype=dtype_, shape=base, device=device), label="x0 values")
    candidates = [op for op in ops if op.applicable(first)]
    if computes:
        candidates = [op for op in candidates if op.arity == 2 or _computing_forms(op, first)]
    if not as_is:
        candidates = [op for op in candidates if op.arity == 2 or _forms_not_returning_the_input(op, first)]
    op = draw(st.sampled_from(candidates), label="op")
    forms = op.forms
    if op.arity == 1 and computes:
        forms = _computing_forms(op, first)
    elif op.arity == 1 and not as_is:
        forms = _forms_not_returning_the_input(op, first)
    form = draw(st.sampled_from(forms), label="form")
    inputs = [first]
    if op.arity == 2:
        shape = draw(broadcastable_shapes(base), label="x1 shape")
        second = draw(tensors(dtype=dtype_, shape=shape, device=device), label="x1 values")
        if not op.partner(first, second):
            second = draw(tensors(dtype=dtype_, shape=base, device=device), label="x1 values (same shape)")
        inputs.append(second)
    n = len(inputs)
    if requires_grad == "all":
        flags = [True] * n
    elif requires_grad == "none":
        flags = [False] * n
    elif requires_grad == "one":
        one = draw(st.integers(0, n - 1), label="the input that requires grad")
        flags = [i == one for i in range(n)]
    else:
        flags = draw(st.lists(st.booleans(), min_size=n, max_size=n), label="inputs requiring grad")
        if requires_grad == "some" and not any(flags):
            flags[draw(st.integers(0, n - 1), label="input made to require grad")] = True
    return Application(form, [x.requires_grad_(flag) for x, flag in zip(inputs, flags)])
