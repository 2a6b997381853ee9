"""Programs whose backward produces NaN, and the forms of anomaly detection (specs/anomaly.md).

A :class:`NanCase` is a drawn leaf ``x`` and a user program ``x -> scalar``: a value-preserving registry op
(``clone``, a reshape, a view, ...), then one NaN-producing step, then a reduction.  The NaN-producing
step is drawn from :data:`NAN_STEPS`; every one has at least one drawn *bad* element in ``x`` (a negative for
``sqrt``, a 0 for ``0/0``, a value whose ``exp`` overflows for ``0 * inf``), built into the strategy, so its
backward node returns NaN on every example.  Masked forms (``torch.where(u > 0, u.sqrt(), 0)``) keep the
forward finite, so no later node sees a NaN first; direct forms are followed by the reduction only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from hypothesis import strategies as st

from .ops import ops_by_name
from .strategies import shapes

__all__ = ["ANOMALY_OFF_CHECKS", "ANOMALY_ON", "NAN_STEPS", "NanCase", "NanStep", "anomaly_state_restored", "nan_cases"]


@dataclass(frozen=True)
class NanStep:
    name: str
    #: the backward node that returns NaN, as ``grad_fn.name()`` gives it (eager)
    node: str
    source: str  # the step as Python, of ``u``
    fn: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    bad: st.SearchStrategy = field(repr=False)  # values that make the backward return NaN
    good: st.SearchStrategy = field(repr=False)  # values that do not


def masked_sqrt(u):
    return torch.where(u > 0, torch.sqrt(u), torch.zeros_like(u))


def sqrt_of_negative(u):
    return u.sqrt()


def masked_pow_half(u):
    return torch.where(u > 0, u.pow(0.5), torch.zeros_like(u))


def masked_log(u):
    return torch.where(u > 0, torch.log(u), torch.zeros_like(u))


def masked_zero_by_zero(u):
    return torch.where(u != 0, u / u, torch.ones_like(u))


def zero_by_zero(u):
    return torch.div(u, u)


def acos_beyond_one(u):
    return torch.acos(u)


def masked_exp_overflow(u):
    return torch.where(u < 50, u.exp(), torch.zeros_like(u))  # 0 * inf in ExpBackward where exp overflowed


_POSITIVE = st.floats(0.25, 4.0)
NAN_STEPS: tuple[NanStep, ...] = (
    NanStep("masked sqrt", "SqrtBackward0", "torch.where(u > 0, torch.sqrt(u), torch.zeros_like(u))", masked_sqrt, st.sampled_from([0.0, -0.5, -2.0]), _POSITIVE),
    NanStep("sqrt of a negative", "SqrtBackward0", "u.sqrt()", sqrt_of_negative, st.floats(-4.0, -0.25), _POSITIVE),
    NanStep("masked pow 0.5", "PowBackward0", "torch.where(u > 0, u.pow(0.5), torch.zeros_like(u))", masked_pow_half, st.floats(-4.0, -0.25), _POSITIVE),
    NanStep("masked log at 0", "LogBackward0", "torch.where(u > 0, torch.log(u), torch.zeros_like(u))", masked_log, st.just(0.0), _POSITIVE),
    NanStep("masked 0/0", "DivBackward0", "torch.where(u != 0, u / u, torch.ones_like(u))", masked_zero_by_zero, st.just(0.0), _POSITIVE),
    NanStep("0/0", "DivBackward0", "torch.div(u, u)", zero_by_zero, st.just(0.0), _POSITIVE),
    NanStep("acos beyond 1", "AcosBackward0", "torch.acos(u)", acos_beyond_one, st.floats(1.25, 4.0) | st.floats(-4.0, -1.25), st.floats(-0.75, 0.75)),
    NanStep("masked exp overflow (0 * inf)", "ExpBackward0", "torch.where(u < 50, u.exp(), torch.zeros_like(u))", masked_exp_overflow, st.floats(1000.0, 4000.0), st.floats(-2.0, 2.0)),
)

#: value-preserving registry ops that carry ``x`` to the NaN-producing step (every element kept, values unchanged)
_CARRIERS = ("clone", "view_as", "flatten", "reshape", "unsqueeze")
_REDUCTIONS = {"sum": lambda t: t.sum(), "mean": lambda t: t.mean()}


@dataclass
class NanCase:
    step: NanStep
    carrier: object  # an OpForm of the registry
    reduction: str
    x: torch.Tensor = field(repr=False)
    bad_positions: tuple[int, ...]

    def leaf(self) -> torch.Tensor:
        """A fresh leaf holding the drawn values (requires grad)."""
        return self.x.detach().clone().requires_grad_(True)

    def program(self, x: torch.Tensor) -> torch.Tensor:
        """The user program (its name and file appear in anomaly detection's forward traceback)."""
        return _REDUCTIONS[self.reduction](self.step.fn(self.carrier(x)))

    def __repr__(self) -> str:
        return (
            f"x = <leaf {str(self.x.dtype).replace('torch.', '')} {tuple(self.x.shape)} with NaN-producing values at flat positions "
            f"{list(self.bad_positions)}: {self.x.detach().cpu().flatten().tolist()}>\n"
            f"u = {self.carrier.source('x')}\ny = {self.step.source}.{self.reduction}()  # backward of {self.step.node} returns NaN"
        )

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(repr(self))


@st.composite
def nan_cases(draw, *, device="cpu", steps=NAN_STEPS) -> NanCase:
    step = draw(st.sampled_from(steps), label="NaN-producing step")
    carrier = draw(st.sampled_from([form for name in _CARRIERS for form in ops_by_name()[name].forms]), label="carrier op form")
    reduction = draw(st.sampled_from(sorted(_REDUCTIONS)), label="reduction")
    dtype = draw(st.sampled_from([torch.float32, torch.float64]), label="dtype")
    shape = draw(shapes(min_dims=1, max_dims=2, min_side=1, max_side=3), label="shape")
    n = 1
    for side in shape:
        n *= side
    bad_positions = tuple(sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n), label="positions of the NaN-producing values")))
    values = [draw(step.bad if i in bad_positions else step.good, label=f"x[{i}]") for i in range(n)]
    x = torch.tensor(values, dtype=dtype).reshape(shape).to(device)
    return NanCase(step, carrier, reduction, x, bad_positions)


@contextlib.contextmanager
def anomaly_state_restored() -> Iterator[None]:
    """Whatever the block does, ``torch.is_anomaly_enabled()`` and ``torch.is_anomaly_check_nan_enabled()`` come back."""
    enabled, check_nan = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
    try:
        yield
    finally:
        torch.set_anomaly_enabled(enabled, check_nan)


@contextlib.contextmanager
def _set_detect_anomaly_as_a_function(*args, **kwargs) -> Iterator[None]:
    """``torch.autograd.set_detect_anomaly(...)`` called as a function (a statement) for the block; the mode before
    it set back the same way after."""
    enabled, check_nan = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
    torch.autograd.set_detect_anomaly(*args, **kwargs)
    try:
        yield
    finally:
        torch.autograd.set_detect_anomaly(enabled, check_nan)


#: every documented way of turning anomaly detection on with the NaN check (the default)
ANOMALY_ON: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "with detect_anomaly()": lambda: torch.autograd.detect_anomaly(),
    "with detect_anomaly(check_nan=True)": lambda: torch.autograd.detect_anomaly(check_nan=True),
    "with set_detect_anomaly(True)": lambda: torch.autograd.set_detect_anomaly(True),
    "set_detect_anomaly(True) as a function": lambda: _set_detect_anomaly_as_a_function(True),
}

#: every documented way of turning anomaly detection on without the NaN check
ANOMALY_OFF_CHECKS: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "with detect_anomaly(check_nan=False)": lambda: torch.autograd.detect_anomaly(check_nan=False),
    "with set_detect_anomaly(True, check_nan=False)": lambda: torch.autograd.set_detect_anomaly(True, check_nan=False),
    "set_detect_anomaly(True, check_nan=False) as a function": lambda: _set_detect_anomaly_as_a_function(True, check_nan=False),
}
