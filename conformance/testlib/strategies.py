"""Hypothesis strategies for tensors.

Every argument accepts either a plain value or a strategy (``dtype=torch.float32``
or ``dtype=floating_dtypes()``).  Tensor values come from a torch generator seeded
by a hypothesis draw, so a failing example replays exactly and the torch RNG is
never consulted behind hypothesis' back.
"""

from __future__ import annotations

from typing import Any, Sequence, TypeVar

import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

__all__ = [
    "ALL_DTYPES",
    "COMPLEX_DTYPES",
    "DIFFERENTIABLE_DTYPES",
    "FLOATING_DTYPES",
    "INTEGRAL_DTYPES",
    "NON_DIFFERENTIABLE_DTYPES",
    "REAL_DTYPES",
    "VACUOUS_EVENT_PREFIX",
    "as_strategy",
    "broadcastable_shapes",
    "dtypes",
    "seeds",
    "shapes",
    "tensors",
    "vacuous",
]

T = TypeVar("T")

#: The prefix of the hypothesis event that marks an example as unable to fail (see :func:`vacuous`).
VACUOUS_EVENT_PREFIX = "vacuous: "


def vacuous(reason: str) -> None:
    """Mark the running example as one that could not have failed whatever torch did.

    Prefer building the precondition into the strategy; where that is not
    possible, call this (and return) so ``tests/test_decisiveness.py`` counts
    the example against the test's share of decisive examples.
    """
    from hypothesis import event

    event(VACUOUS_EVENT_PREFIX + reason)

FLOATING_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
COMPLEX_DTYPES: tuple[torch.dtype, ...] = (torch.complex64, torch.complex128)
INTEGRAL_DTYPES: tuple[torch.dtype, ...] = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
#: dtypes whose tensors may require grad (documented: floating point and complex).
DIFFERENTIABLE_DTYPES = FLOATING_DTYPES + COMPLEX_DTYPES
#: dtypes whose tensors can never require grad.
NON_DIFFERENTIABLE_DTYPES = INTEGRAL_DTYPES + (torch.bool,)
#: every dtype the suite draws.
ALL_DTYPES = DIFFERENTIABLE_DTYPES + NON_DIFFERENTIABLE_DTYPES
#: the floating dtypes whose gradients are compared numerically (random graphs, reference results).
REAL_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)


def as_strategy(value: T | SearchStrategy[T]) -> SearchStrategy[T]:
    return value if isinstance(value, SearchStrategy) else st.just(value)


def dtypes(choices: Sequence[torch.dtype] = FLOATING_DTYPES) -> SearchStrategy[torch.dtype]:
    return st.sampled_from(tuple(choices))


def seeds() -> SearchStrategy[int]:
    return st.integers(min_value=0, max_value=2**31 - 1)


def shapes(*, min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 4) -> SearchStrategy[tuple[int, ...]]:
    """Tensor shapes, including 0-d (``()``) and empty (a side of 0) by default."""
    return st.lists(
        st.integers(min_value=min_side, max_value=max_side), min_size=min_dims, max_size=max_dims
    ).map(tuple)


@st.composite
def broadcastable_shapes(draw, shape: tuple[int, ...] | SearchStrategy[tuple[int, ...]]) -> tuple[int, ...]:
    """A shape that broadcasts *to* ``shape``: some sides set to 1, some leading dims dropped."""
    base = draw(as_strategy(shape), label="base shape")
    keep = draw(st.integers(min_value=0, max_value=len(base)), label="dims kept")
    trailing = base[len(base) - keep :]
    ones = draw(st.lists(st.booleans(), min_size=keep, max_size=keep), label="sides set to 1")
    return tuple(1 if one else side for side, one in zip(trailing, ones))


def _values(shape: tuple[int, ...], dtype: torch.dtype, seed: int, low: float, high: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if not (dtype.is_floating_point or dtype.is_complex):
        info = torch.iinfo(dtype)
        lo, hi = max(info.min, int(low) - 3), min(info.max, int(high) + 3)
        return torch.randint(lo, hi + 1, shape, generator=generator, dtype=torch.int64).to(dtype)
    real = torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low
    if dtype.is_complex:
        imag = torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low
        return torch.complex(real, imag).to(dtype)
    return real.to(dtype)


@st.composite
def tensors(
    draw,
    *,
    dtype: torch.dtype | SearchStrategy[torch.dtype] = dtypes(),
    shape: tuple[int, ...] | SearchStrategy[tuple[int, ...]] = shapes(),
    device: str | torch.device | SearchStrategy[Any] = "cpu",
    requires_grad: bool | SearchStrategy[bool] = False,
    low: float = -2.0,
    high: float = 2.0,
) -> torch.Tensor:
    """A leaf tensor with drawn dtype, shape, values and ``requires_grad``.

    ``requires_grad`` is only applied to differentiable dtypes; for the others it
    must be False (ask for those with ``requires_grad=False``).
    """
    dtype_ = draw(as_strategy(dtype), label="dtype")
    shape_ = tuple(draw(as_strategy(shape), label="shape"))
    device_ = draw(as_strategy(device), label="device")
    requires_grad_ = draw(as_strategy(requires_grad), label="requires_grad")
    seed = draw(seeds(), label="value seed")
    tensor = _values(shape_, dtype_, seed, low, high).to(device_)
    if requires_grad_:
        if dtype_ not in DIFFERENTIABLE_DTYPES:
            raise ValueError(f"tensors(): requires_grad=True with non-differentiable dtype {dtype_}")
        tensor.requires_grad_(True)
    return tensor
