"""Ops at their non-differentiable points, with the gradient the autograd notes (or torch's own choice) gives there.

A :class:`Point` is an op (in several call forms), a way to *plant* its non-differentiable point into drawn
operands at the elements a drawn mask selects (a zero, a tie, a bound, a value outside the domain), and a
*reference*: the expected gradient for an incoming gradient ``g``, computed from the operand values with
comparisons and the closed-form derivative only (never autograd).  :func:`point_cases` draws a point, a form, a
shape, the values (distinct, away from every kink: :func:`conformance.testlib.references.safe_values`), the mask
(at least one element, two tied ones for a tie) and the dtype's operands.  Spec: specs/nondiff.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from hypothesis import strategies as st

from .references import safe_values
from .strategies import seeds

__all__ = ["POINTS", "Point", "PointCase", "point_cases"]

_NAMESPACE = {"torch": torch, "F": torch.nn.functional, "nn": torch.nn, "inf": math.inf}
Tensors = tuple[torch.Tensor, ...]


def _f(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(like.dtype)


@dataclass(frozen=True)
class Point:
    name: str
    clause: str
    arity: int
    templates: tuple[str, ...]
    #: (base operands, mask) -> operands with the non-differentiable point planted where the mask is set
    plant: Callable[[list[torch.Tensor], torch.Tensor], list[torch.Tensor]] = field(repr=False)
    #: (operands, g) -> the expected gradient of each operand
    reference: Callable[[Tensors, torch.Tensor], Tensors] = field(repr=False)
    #: the mask's forced elements are a tie of two in the first row (the last side is at least 2)
    tie: bool = False
    #: base values mapped before planting (e.g. into the op's domain)
    domain: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda t: t, repr=False)

    def forms(self) -> tuple[tuple[str, Callable[..., torch.Tensor]], ...]:
        params = "a, b" if self.arity == 2 else "a"
        return tuple((t, eval(compile(f"lambda {params}: {t.format(a='a', b='b')}", f"<point {self.name}>", "eval"), dict(_NAMESPACE)))  # noqa: S307
                     for t in self.templates)


# --------------------------------------------------------------------------------------------- planting helpers

def _at(value: float) -> Callable:
    return lambda base, mask: [torch.where(mask, torch.full_like(base[0], value), base[0])]


def _tie_b(base, mask):  # b equals a where the mask is set
    return [base[0], torch.where(mask, base[0], base[1])]


def _row_extreme(sign: float) -> Callable:
    """The masked elements of each row take one value beyond every other element (sign +1: a tied maximum)."""
    def plant(base, mask):
        (a,) = base
        m = sign * (a.abs().max() + 1)
        return [torch.where(mask, m, a)]
    return plant


def _global_extreme(sign: float) -> Callable:
    return _row_extreme(sign)  # the same planting; the reference ties over all elements


def _signed(value: float) -> Callable:
    """+-value at the masked elements, with the sign of the base value there."""
    return lambda base, mask: [torch.where(mask, torch.sign(base[0]) * value, base[0])]


def _same(base, mask):
    return [base[0], base[0].clone()]


def _negative_at(base, mask):
    return [torch.where(mask, -base[0].abs(), base[0].abs())]


def _outside_unit(base, mask):  # |x| > 1 at the mask, |x| < 1 elsewhere
    a = base[0] * 0.5
    return [torch.where(mask, torch.sign(a) * (a.abs() + 1), a)]


# ------------------------------------------------------------------------------------------- reference helpers

def _minmax_pair(smaller: bool) -> Callable:
    def ref(ops, g):
        a, b = (t.detach() for t in ops)
        a_, b_ = torch.broadcast_tensors(a, b)
        first = (a_ < b_) if smaller else (a_ > b_)
        tie = _f(a_ == b_, a_) / 2
        return ((g * (_f(first, a_) + tie)).sum_to_size(a.shape), (g * (_f(~first & (a_ != b_), a_) + tie)).sum_to_size(b.shape))
    return ref


def _row_even(largest: bool) -> Callable:
    def ref(ops, g):
        x = ops[0].detach()
        extreme = x.amax(-1, keepdim=True) if largest else x.amin(-1, keepdim=True)
        top = _f(x == extreme, x)
        return (g * top / top.sum(-1, keepdim=True),)
    return ref


def _all_even(largest: bool) -> Callable:
    def ref(ops, g):
        x = ops[0].detach()
        top = _f(x == (x.max() if largest else x.min()), x)
        return (g * top / top.sum(),)
    return ref


def _row_first(largest: bool) -> Callable:
    """The whole of g to the first extreme element of each row (the documented index), none to the other ties."""
    def ref(ops, g):
        x = ops[0].detach()
        extreme = x.amax(-1, keepdim=True) if largest else x.amin(-1, keepdim=True)
        hit = (x == extreme).to(torch.int64)
        first = hit * (hit.cumsum(-1) == 1).to(torch.int64)
        return (g * _f(first.bool(), x),)
    return ref


def _between(lo: float, hi: float, *, closed: bool) -> Callable:
    def ref(ops, g):
        x = ops[0].detach()
        inside = (x >= lo) & (x <= hi) if closed else (x > lo) & (x < hi)
        return (g * _f(inside, x),)
    return ref


def _leaky(slope: float) -> Callable:
    return lambda ops, g: (g * torch.where(ops[0].detach() > 0, torch.ones_like(g), torch.full_like(g, slope)),)


def _sign(ops, g):
    x = ops[0].detach()
    return (g * (_f(x > 0, x) - _f(x < 0, x)),)


def _inf_norm(ops, g):
    x = ops[0].detach()
    top = _f(x.abs() == x.abs().max(), x)
    return (g * (_f(x > 0, x) - _f(x < 0, x)) * top / top.sum(),)


def _zeros(ops, g):
    return tuple(torch.zeros_like(t) for t in ops)


def _closed_form(derivative: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """g times the derivative's closed form evaluated at the operand (inf, NaN or a finite value where it says)."""
    return lambda ops, g: (g * derivative(ops[0].detach()),)


_MAX = "torch.max({a}, dim=-1, keepdim=True).values", "{a}.max(-1, keepdim=True)[0]", "torch.max({a}, -1, True).values"
_MIN = "torch.min({a}, dim=-1, keepdim=True).values", "{a}.min(-1, keepdim=True)[0]", "torch.min({a}, -1, True).values"
_SQRT = "torch.sqrt({a})", "{a}.sqrt()", "{a} ** 0.5", "torch.pow({a}, 0.5)"

POINTS: tuple[Point, ...] = (
    # NONDIFF-1: concave kinks, the super-gradient of minimum norm
    Point("minimum_tie", "NONDIFF-1", 2, ("torch.minimum({a}, {b})", "{a}.minimum({b})", "torch.min({a}, {b})"), _tie_b, _minmax_pair(True)),
    Point("amin_tie", "NONDIFF-1", 1, ("torch.amin({a}, dim=-1, keepdim=True)", "{a}.amin(-1, keepdim=True)"), _row_extreme(-1), _row_even(False), tie=True),
    Point("min_all_tie", "NONDIFF-1", 1, ("torch.min({a})", "{a}.min()"), _global_extreme(-1), _all_even(False), tie=True),
    Point("hardtanh_upper", "NONDIFF-1", 1, ("F.hardtanh({a})", "nn.Hardtanh()({a})", "F.hardtanh({a}, -1.0, 1.0)"), _at(1.0), _between(-1.0, 1.0, closed=False)),
    Point("relu6_upper", "NONDIFF-1", 1, ("F.relu6({a})", "nn.ReLU6()({a})"), _at(6.0), _between(0.0, 6.0, closed=False)),
    # NONDIFF-2: convex kinks beyond GRADVAL-5's, the sub-gradient of minimum norm
    Point("max_all_tie", "NONDIFF-2", 1, ("torch.max({a})", "{a}.max()"), _global_extreme(1), _all_even(True), tie=True),
    Point("hardtanh_lower", "NONDIFF-2", 1, ("F.hardtanh({a})", "nn.Hardtanh()({a})", "F.hardtanh({a}, -1.0, 1.0)"), _at(-1.0), _between(-1.0, 1.0, closed=False)),
    Point("relu6_lower", "NONDIFF-2", 1, ("F.relu6({a})", "nn.ReLU6()({a})"), _at(0.0), _between(0.0, 6.0, closed=False)),
    Point("leaky_relu_zero", "NONDIFF-2", 1, ("F.leaky_relu({a}, 0.2)", "nn.LeakyReLU(0.2)({a})", "F.leaky_relu({a}, negative_slope=0.2)"), _at(0.0), _leaky(0.2)),
    Point("norm1_zeros", "NONDIFF-2", 1, ("torch.linalg.vector_norm({a}, 1)", "{a}.norm(p=1)", "torch.norm({a}, p=1)"), _at(0.0), _sign),
    Point("norminf_tie", "NONDIFF-2", 1, ("torch.linalg.vector_norm({a}, inf)", "{a}.norm(p=inf)"), lambda base, mask: [torch.where(mask, torch.sign(base[0]) * (base[0].abs().max() + 1), base[0])], _inf_norm, tie=True),
    Point("dist_equal", "NONDIFF-2", 2, ("torch.dist({a}, {b})", "{a}.dist({b})", "torch.dist({a}, {b}, 3)", "torch.linalg.vector_norm({a} - {b})"), _same, _zeros),
    # NONDIFF-3: max(dim) / min(dim) ties, the whole gradient to the returned (first) index
    Point("max_dim_tie", "NONDIFF-3", 1, _MAX, _row_extreme(1), _row_first(True), tie=True),
    Point("min_dim_tie", "NONDIFF-3", 1, _MIN, _row_extreme(-1), _row_first(False), tie=True),
    # NONDIFF-4: defined, gradient by continuity: +inf for sqrt at 0
    Point("sqrt_zero", "NONDIFF-4", 1, _SQRT, lambda base, mask: [torch.where(mask, torch.zeros_like(base[0]), base[0].abs())], _closed_form(lambda x: 0.5 / torch.sqrt(x))),
    # NONDIFF-5: not defined: NaN for sqrt, acos, asin; log's formula continued (1/x) for log and log2
    Point("sqrt_negative", "NONDIFF-5", 1, _SQRT, _negative_at, _closed_form(lambda x: 0.5 / torch.sqrt(x))),
    Point("acos_outside", "NONDIFF-5", 1, ("torch.acos({a})", "{a}.acos()", "torch.arccos({a})"), _outside_unit, _closed_form(lambda x: -1 / torch.sqrt(1 - x * x))),
    Point("asin_outside", "NONDIFF-5", 1, ("torch.asin({a})", "{a}.asin()", "torch.arcsin({a})"), _outside_unit, _closed_form(lambda x: 1 / torch.sqrt(1 - x * x))),
    Point("log_negative", "NONDIFF-5", 1, ("torch.log({a})", "{a}.log()"), _negative_at, _closed_form(lambda x: 1 / x)),
    Point("log2_negative", "NONDIFF-5", 1, ("torch.log2({a})", "{a}.log2()"), _negative_at, _closed_form(lambda x: 1 / (x * math.log(2.0)))),
    # NONDIFF-6 / NONDIFF-7: clamp at its scalar bounds (reference: NONDIFF-6's, g at the bounds)
    Point("clamp_bounds", "NONDIFF-6", 1, ("torch.clamp({a}, -1.0, 1.0)", "{a}.clamp(-1.0, 1.0)", "torch.clip({a}, -1.0, 1.0)", "{a}.clamp(min=-1.0, max=1.0)"), _signed(1.0), _between(-1.0, 1.0, closed=True)),
    Point("clamp_min_bound", "NONDIFF-6", 1, ("torch.clamp({a}, min=-1.0)", "torch.clamp_min({a}, -1.0)", "{a}.clamp_min(-1.0)"), _at(-1.0), _between(-1.0, math.inf, closed=True)),
    Point("clamp_max_bound", "NONDIFF-6", 1, ("torch.clamp({a}, max=1.0)", "torch.clamp_max({a}, 1.0)", "{a}.clamp_max(1.0)"), _at(1.0), _between(-math.inf, 1.0, closed=True)),
    # GRADVAL-5's points, for NONDIFF-8 (forward mode at the same points)
    Point("abs_zero", "GRADVAL-5", 1, ("torch.abs({a})", "{a}.abs()", "abs({a})"), _at(0.0), _sign),
    Point("relu_zero", "GRADVAL-5", 1, ("torch.relu({a})", "F.relu({a})", "nn.ReLU()({a})"), _at(0.0), _between(0.0, math.inf, closed=False)),
    Point("maximum_tie", "GRADVAL-5", 2, ("torch.maximum({a}, {b})", "{a}.maximum({b})", "torch.max({a}, {b})"), _tie_b, _minmax_pair(False)),
    Point("amax_tie", "GRADVAL-5", 1, ("torch.amax({a}, dim=-1, keepdim=True)", "{a}.amax(-1, keepdim=True)"), _row_extreme(1), _row_even(True), tie=True),
)

BY_NAME = {point.name: point for point in POINTS}


@dataclass(frozen=True)
class PointCase:
    point: Point
    source: str
    fn: Callable[..., torch.Tensor] = field(repr=False)
    operands: Tensors = field(repr=False)
    mask: torch.Tensor = field(repr=False)

    def describe(self) -> str:
        return f"`{self.source.format(a='t0', b='t1')}` ({self.point.name})"

    def __repr__(self) -> str:
        values = "\n".join(f"  t{i} = {t.detach().cpu().tolist()!r} ({t.dtype})" for i, t in enumerate(self.operands))
        return f"{self.describe()}, planted at {self.mask.nonzero().tolist()}:\n{values}"


@st.composite
def point_cases(draw, names: Sequence[str], *, device: str = "cpu", dtype: torch.dtype = torch.float64):
    """A point of ``names``, one of its forms, and operands with its non-differentiable point planted at drawn
    elements (always at least one; a tie of at least two in the first row for a tie)."""
    point = BY_NAME[draw(st.sampled_from(tuple(names)), label="point")]
    source, fn = draw(st.sampled_from(point.forms()), label="form")
    leading = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=1), label="leading shape"))
    shape = leading + (draw(st.integers(2 if point.tie else 1, 3), label="last side"),)
    n = int(torch.Size(shape).numel())
    mask = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n), label="planted elements")).reshape(shape)
    forced = [0, 1] if point.tie else [draw(st.integers(0, n - 1), label="an element surely planted")]
    mask.view(-1)[forced] = True
    base = safe_values([shape] * point.arity, draw(seeds(), label="value seed"))
    operands = point.plant([point.domain(t) for t in base], mask)
    operands = tuple(t.to(dtype=dtype, device=device).requires_grad_(True) for t in operands)
    return PointCase(point, source, fn, operands, mask)
