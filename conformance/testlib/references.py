"""Independent references for gradient values: inputs of the op registry kept away from non-differentiable points,
and finite differences (``torch.autograd.gradcheck`` / ``gradgradcheck``) as the reference a test compares with.

:func:`op_cases` draws, for one registry op, a form and float64 operands whose values are all distinct, at least
0.25 from zero and at least 0.2 from +-1 (``clamp``'s bounds): no element sits at (or within a finite-difference
step of) a kink of ``abs``, ``relu``, ``clamp``, ``maximum``, ``amax``, ``where`` or ``masked_select``'s mask,
and no divisor is near zero.  :func:`agrees_with_finite_differences` runs gradcheck and fails the clause with a
message naming the program, the derivative and the reference that disagreed.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from hypothesis import strategies as st

from .assertions import fail
from .ops import Op, OpForm
from .strategies import broadcastable_shapes, seeds

__all__ = [
    "GRID",
    "OpCase",
    "agreeing",
    "agrees_with_finite_differences",
    "op_cases",
    "safe_values",
]

#: magnitudes the drawn values are taken from (with a jitter below half the spacing): away from 0 and from 1
GRID: tuple[float, ...] = tuple(round(0.3 + 0.05 * k, 2) for k in range(10)) + tuple(round(1.25 + 0.05 * k, 2) for k in range(10))
_JITTER = 0.02  # < half the grid spacing (0.05): drawn values stay distinct


def safe_values(shapes: Sequence[tuple[int, ...]], seed: int, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """Tensors of ``shapes`` whose elements, over all of them, are distinct, with magnitudes from :data:`GRID`
    (jittered) and random signs: no two equal, none near 0 or +-1."""
    sizes = [int(torch.Size(shape).numel()) for shape in shapes]
    total = sum(sizes)
    if total > 2 * len(GRID):
        raise ValueError(f"safe_values: {total} elements, at most {2 * len(GRID)} distinct grid values")
    generator = torch.Generator().manual_seed(seed)
    grid = torch.tensor(GRID, dtype=torch.float64)
    points = torch.cat([grid, -grid])[torch.randperm(2 * len(GRID), generator=generator)[:total]]
    points = points + (torch.rand(total, generator=generator, dtype=torch.float64) * 2 - 1) * _JITTER
    out, start = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(points[start : start + size].reshape(shape).to(dtype))
        start += size
    return out


@dataclass(frozen=True)
class OpCase:
    form: OpForm
    operands: tuple[torch.Tensor, ...]  # leaves that require grad, float64

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"t{i}" for i in range(len(self.operands)))

    @property
    def source(self) -> str:
        return self.form.source(*self.names)

    def describe(self) -> str:
        shapes = ", ".join(f"t{i}: {str(t.dtype).replace('torch.', '')} {tuple(t.shape)}" for i, t in enumerate(self.operands))
        return f"`{self.source}` ({self.form.op.name}, {self.form.form} form; {shapes})"

    def __repr__(self) -> str:  # hypothesis prints draws with this
        return f"OpCase({self.describe()}, values={[t.tolist() for t in self.operands]})"


def _dims_accepted(op: Op, max_dims: int) -> list[int]:
    return [d for d in range(max_dims + 1) if op.applicable(torch.empty((2,) * d))]


@st.composite
def op_cases(draw, op: Op, *, device: str = "cpu", dtype: torch.dtype = torch.float64, forms: Sequence[OpForm] | None = None,
             max_dims: int = 2, max_side: int = 3) -> OpCase:
    """One form of ``op`` and operands it applies to (sides >= 1, at most ``max_dims`` dims), values from :func:`safe_values`."""
    form = draw(st.sampled_from(tuple(forms if forms is not None else op.forms)), label="form")
    dims = draw(st.sampled_from(_dims_accepted(op, max_dims)), label="dims of t0")
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=dims, max_size=dims), label="shape of t0"))
    shapes_ = [shape]
    if op.arity == 2:
        partner = op.partner.__name__
        if partner == "_vectors":
            other = (draw(st.integers(1, max_side), label="length of t1"),)  # outer: any two vectors
        elif partner == "_broadcastable":
            other = draw(broadcastable_shapes(shape), label="shape of t1")
            if draw(st.booleans(), label="swap operands (t1 the larger)"):
                shapes_ = [tuple(other)]
                other = shape
        else:
            other = shape  # same-shape partners (matmul, dot, einsum, cat, stack)
        shapes_.append(tuple(other))
    values = safe_values(shapes_, draw(seeds(), label="value seed"))
    operands = tuple(v.to(dtype=dtype, device=device).requires_grad_(True) for v in values)
    return OpCase(form, operands)


def _first_line(text: str) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else ""


@contextmanager
def agreeing(*, clause: str, what: str, reference: str) -> Iterator[None]:
    """Run a reference check (gradcheck, gradgradcheck): its mismatch error fails ``clause`` saying that ``what``
    differs from ``reference``; any other error fails it saying the check could not run."""
    __tracebackhide__ = True
    from torch.autograd.gradcheck import GradcheckError

    try:
        yield
    except GradcheckError as exc:
        fail(clause, f"{what} differs from {reference}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a derivative that raises violates the clause too
        fail(clause, f"{what} should be comparable with {reference}, but computing it raised {type(exc).__name__}: {exc}")


def agrees_with_finite_differences(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], *, clause: str, what: str,
                                   fast_mode: bool, forward: bool = False) -> None:
    """``torch.autograd.gradcheck`` of ``fn`` at ``inputs``: reverse mode (or, with ``forward``, forward mode only)
    against finite differences, the full Jacobian (slow mode) or a random projection of it (``fast_mode``)."""
    __tracebackhide__ = True
    reference = f"finite differences (gradcheck, {'fast' if fast_mode else 'slow'} mode)"
    with agreeing(clause=clause, what=what, reference=reference):
        torch.autograd.gradcheck(
            fn, tuple(inputs), fast_mode=fast_mode, check_undefined_grad=False,
            check_forward_ad=forward, check_backward_ad=not forward, raise_exception=True,
        )
