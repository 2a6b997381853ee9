"""Device transfer and conversion.  Spec: specs/transfer.md.

In a compiled mode each test's user program -- the transfer, ``detach``, dtype
conversion, ``item()`` or ``tolist()`` -- runs inside a function compiled through
the ``mode`` fixture; backward runs through its outputs.  The ``numpy()`` clauses
(XFER-5 .. XFER-8) are not applicable there (their spec field says why).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_requires_grad, fail
from conformance.testlib.modes import Mode
from conformance.testlib.strategies import ALL_DTYPES, COMPLEX_DTYPES, DIFFERENTIABLE_DTYPES, FLOATING_DTYPES, dtypes, shapes, tensors

NUMPY_DTYPES = tuple(d for d in ALL_DTYPES if d != torch.bfloat16)  # NumPy has no bfloat16

#: How the tensor handed to a conversion is presented: as drawn, or (from a complex tensor) as a lazy
#: view whose values torch resolves on conversion: a conjugate bit, or the negative bit of `.conj().imag`.
PRESENTATIONS = {
    "t": lambda t: t,
    "t.conj() (conjugate bit)": lambda t: t.conj(),
    "t.conj().imag (negative bit)": lambda t: t.conj().imag,
}


def _presented(data, device, presented: str, *, plain_dtypes=ALL_DTYPES) -> torch.Tensor:
    """A tensor drawn from ``plain_dtypes`` as is, or a complex one presented as a lazy view."""
    choices = plain_dtypes if presented == "t" else COMPLEX_DTYPES
    return PRESENTATIONS[presented](_any_tensor(data, device, dtype=dtypes(choices)))


def _any_tensor(data, device, *, dtype=dtypes(ALL_DTYPES), requires_grad=None):
    dtype_ = data.draw(dtype, label="dtype")
    grad = data.draw(st.booleans(), label="requires_grad") if requires_grad is None else requires_grad
    return data.draw(tensors(dtype=dtype_, device=device, requires_grad=grad and dtype_ in DIFFERENTIABLE_DTYPES), label="y")


def _scalar_outputs(mode: Mode):
    """In a compiled mode, dynamo's ``capture_scalar_outputs`` (the setting its graph-break hint names): ``item()``
    and ``tolist()`` are traced into the compiled graph instead of breaking it.  Nothing in eager mode."""
    if not mode.compiled:
        return contextlib.nullcontext()
    import torch._dynamo

    return torch._dynamo.config.patch(capture_scalar_outputs=True)


# ----------------------------------------------------------------------------- XFER-1 .. -4


def _detach_around_the_move(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return y.cpu().detach(), y.detach().cpu()


@pytest.mark.spec("XFER-1")
@given(data=st.data())
def test_cpu_detach_and_detach_cpu_agree(device, mode, data):
    y = _any_tensor(data, device)
    first, second = mode.run(_detach_around_the_move, y)
    for name, result in (("y.cpu().detach()", first), ("y.detach().cpu()", second)):
        assert_equal(result.device.type, "cpu", clause="XFER-1", what=f"{name}.device ({mode})")
        assert_requires_grad(result, False, clause="XFER-1", what=f"{name} ({mode})")
    assert_equal((first.dtype, first.shape), (second.dtype, second.shape), clause="XFER-1", what=f"(dtype, shape) of y.cpu().detach() vs y.detach().cpu() ({mode})")
    assert_close(first, second, clause="XFER-1", what=f"y.cpu().detach() vs y.detach().cpu() ({mode})", rtol=0, atol=0)


TRANSFERS = {
    "y.cpu()": lambda y: y.cpu(),
    "y.to('cpu')": lambda y: y.to("cpu"),
    "y.to(torch.float64)": lambda y: y.to(torch.float64),
    "y.to(torch.float32)": lambda y: y.to(torch.float32),
    "y.double()": lambda y: y.double(),
    "y.to(other device)": lambda y: y.to("cpu"),  # from the device under test; a no-op on the CPU, see below
}

#: The transfer forms as test parameters; a move to another device kind is not exercised on the CPU.
TRANSFER_PARAMS = [
    pytest.param(name, marks=pytest.mark.needs_other_device(f"{name} is a no-op here")) if name == "y.to(other device)" else name
    for name in sorted(TRANSFERS)
]


@pytest.mark.spec("XFER-2")
@pytest.mark.parametrize("transfer", TRANSFER_PARAMS)
@given(data=st.data())
def test_transfers_are_differentiable(device, mode, transfer, data):
    y = data.draw(tensors(dtype=dtypes(FLOATING_DTYPES[:2]), device=device, requires_grad=True), label="y")
    moved = mode.run(TRANSFERS[transfer], y)
    assert_requires_grad(moved, True, clause="XFER-2", what=f"{transfer} ({mode})")
    if moved is not y and moved.grad_fn is None:
        fail("XFER-2", f"`{transfer}` copied y but recorded no grad_fn ({mode})")
    (moved.double() * 3).sum().backward()
    if y.grad is None:
        fail("XFER-2", f"backward through `{transfer}` gave y no gradient ({mode})")
    assert_equal((y.grad.shape, y.grad.dtype, y.grad.device), (y.shape, y.dtype, y.device), clause="XFER-2", what=f"(shape, dtype, device) of y.grad through `{transfer}` ({mode})")
    assert_close(y.grad, torch.full_like(y, 3.0), clause="XFER-2", what=f"y.grad through `{transfer}` of (moved * 3).sum() ({mode})")


#: Calls that change nothing for ``t`` (its own device and dtype): each must return ``t`` itself.
UNCHANGED = {
    "t.to(t.device)": lambda t: t.to(t.device),
    "t.to(t.dtype)": lambda t: t.to(t.dtype),
    "t.to(t.device, t.dtype)": lambda t: t.to(t.device, t.dtype),
}
#: Calls that copy (``other`` is a dtype ``t`` does not have): each must return a new tensor not sharing t's storage.
COPIES = {
    "t.to(t.device, copy=True)": lambda t, other: t.to(t.device, copy=True),
    "t.to(other dtype)": lambda t, other: t.to(other),
}


def _unchanged_and_copies(t: torch.Tensor, other_dtype: torch.dtype) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Every call of UNCHANGED and COPIES on ``t``, and ``t.cpu()`` last in the group its device puts it in."""
    unchanged = tuple(call(t) for call in UNCHANGED.values())
    copies = tuple(call(t, other_dtype) for call in COPIES.values())
    if t.device.type == "cpu":
        unchanged += (t.cpu(),)
    else:
        copies += (t.cpu(),)
    return unchanged, copies


@pytest.mark.spec("XFER-3")
@given(data=st.data())
def test_to_returns_self_or_a_copy(device, mode, data):
    t = _any_tensor(data, device, requires_grad=False)
    wide, narrow = (torch.complex128, torch.complex64) if t.dtype.is_complex else (torch.float64, torch.float32)
    other_dtype = wide if t.dtype != wide else narrow
    unchanged_results, copy_results = mode.run(_unchanged_and_copies, t, other_dtype)
    unchanged_sources = list(UNCHANGED) + (["t.cpu()"] if t.device.type == "cpu" else [])
    copy_sources = ["t.to(t.device, copy=True)", f"t.to({other_dtype})"] + (["t.cpu()"] if t.device.type != "cpu" else [])
    for source, result in zip(unchanged_sources, unchanged_results):
        assert_equal(result is t, True, clause="XFER-3", what=f"`{source}` is t (nothing changes) ({mode})")
    for source, result in zip(copy_sources, copy_results):
        assert_equal(result is t, False, clause="XFER-3", what=f"`{source}` is t ({mode})")
        if t.numel() and result.data_ptr() == t.data_ptr():
            fail("XFER-3", f"`{source}` shares storage with t; it should be a copy ({mode})")


@pytest.mark.spec("XFER-4")
@pytest.mark.devices("cuda", reason="XFER-4 is about CUDA tensors")
@given(data=st.data())
def test_cuda_and_to_cuda_are_equivalent(device, mode, data):
    t = data.draw(tensors(dtype=torch.float32, device="cpu", requires_grad=True), label="t")
    via_method, via_to = mode.run(lambda t: (t.cuda(), t.to("cuda")), t)
    assert_equal((via_method.device, via_method.dtype), (via_to.device, via_to.dtype), clause="XFER-4", what="(device, dtype) of t.cuda() vs t.to('cuda')")
    assert_close(via_method, via_to, clause="XFER-4", what="t.cuda() vs t.to('cuda')", rtol=0, atol=0)
    assert_equal(type(via_method.grad_fn), type(via_to.grad_fn), clause="XFER-4", what="grad_fn type of t.cuda() vs t.to('cuda')")


# ----------------------------------------------------------------------------- XFER-5 .. -8


@pytest.mark.spec("XFER-5")
@pytest.mark.devices("cpu", reason="numpy() refuses a tensor on another device for its device first (XFER-6)")
@given(data=st.data())
def test_numpy_refuses_a_tensor_that_requires_grad(device, data):
    t = data.draw(tensors(dtype=dtypes(FLOATING_DTYPES[:3]), device=device, requires_grad=True), label="t")
    with assert_raises(RuntimeError, match="detach", clause="XFER-5", what="t.numpy() on a tensor requiring grad"):
        t.numpy()


@pytest.mark.spec("XFER-6")
@pytest.mark.devices("non-cpu", reason="XFER-6 is about tensors not on the CPU")
@given(data=st.data())
def test_numpy_refuses_a_non_cpu_tensor(device, data):
    t = _any_tensor(data, device, dtype=dtypes(NUMPY_DTYPES), requires_grad=False)
    with assert_raises(TypeError, match="cpu", clause="XFER-6", what=f"t.numpy() on a {device} tensor"):
        t.numpy()


@pytest.mark.spec("XFER-7")
@given(data=st.data())
def test_numpy_of_a_cpu_tensor_shares_memory(data):
    t = data.draw(tensors(dtype=dtypes(NUMPY_DTYPES), shape=shapes(min_dims=1, min_side=1), device="cpu"), label="t")
    array = t.numpy()
    assert_equal(np.array_equal(array, t.tolist()), True, clause="XFER-7", what="t.numpy() values vs t.tolist()")
    first = tuple([0] * t.dim())
    array[first] = 1
    assert_equal(t[first].item(), array[first].item(), clause="XFER-7", what="t[0...] after writing 1 through t.numpy()")
    t[first] = 0
    assert_equal(array[first].item(), t[first].item(), clause="XFER-7", what="t.numpy()[0...] after writing 0 through t")


@pytest.mark.spec("XFER-8")
@pytest.mark.parametrize("presented", list(PRESENTATIONS))
@given(data=st.data())
def test_numpy_force_converts_any_tensor(device, presented, data):
    t = _presented(data, device, presented, plain_dtypes=NUMPY_DTYPES)
    forced = t.numpy(force=True)
    expected = t.detach().cpu().resolve_conj().resolve_neg().numpy()  # the documented equivalent
    what = f"t.numpy(force=True) of {presented}"
    assert_equal((forced.dtype, forced.shape), (expected.dtype, expected.shape), clause="XFER-8", what=f"(dtype, shape) of {what}")
    assert_equal(np.array_equal(forced, expected, equal_nan=forced.dtype.kind in "fc"), True, clause="XFER-8", what=f"{what} vs t.detach().cpu().resolve_conj().resolve_neg().numpy()")


# ----------------------------------------------------------------------------- XFER-9, -10


def _python_kind(dtype: torch.dtype) -> type:
    if dtype == torch.bool:
        return bool
    if dtype.is_complex:
        return complex
    return float if dtype.is_floating_point else int


@pytest.mark.spec("XFER-9")
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@given(data=st.data())
def test_item_of_a_one_element_tensor(device, mode, dtype, data):
    shape = (1,) * data.draw(st.integers(0, 4), label="dims")
    requires_grad = dtype in DIFFERENTIABLE_DTYPES and data.draw(st.booleans(), label="requires_grad")
    t = data.draw(tensors(dtype=dtype, shape=shape, device=device, requires_grad=requires_grad), label="t")
    with _scalar_outputs(mode):
        value = mode.run(lambda t: t.item(), t)
    assert_equal(type(value), _python_kind(dtype), clause="XFER-9", what=f"type of item() of a {dtype} tensor of shape {shape} ({mode})")
    rebuilt = torch.tensor(value, dtype=dtype)
    element = t.detach().cpu().reshape(())
    assert_equal(torch.equal(rebuilt, element) or bool(rebuilt.isnan().any()), True, clause="XFER-9", what=f"item() = {value!r} equals the element {element} ({mode})")


@st.composite
def _shapes_without_one_element(draw) -> tuple[int, ...]:
    """A shape with zero or several elements, by construction: one drawn side is 0 or at least 2."""
    shape = list(draw(shapes(min_dims=1)))
    shape[draw(st.integers(0, len(shape) - 1))] = draw(st.sampled_from([0, 2, 3, 4]))
    return tuple(shape)


def _not_one_element(device: str) -> st.SearchStrategy[torch.Tensor]:
    return tensors(dtype=dtypes(ALL_DTYPES), shape=_shapes_without_one_element(), device=device)


#: What item() raises for a tensor without exactly one element, by the clause in force:
#: RuntimeError from torch 2.0 (XFER-11), ValueError before (XFER-12); the clause's version range decides.
ITEM_ERROR_CLAUSES = [
    pytest.param("XFER-11", RuntimeError, marks=pytest.mark.spec("XFER-11"), id="XFER-11-RuntimeError"),
    pytest.param("XFER-12", ValueError, marks=pytest.mark.spec("XFER-12"), id="XFER-12-ValueError"),
]


@pytest.mark.parametrize(("clause", "error"), ITEM_ERROR_CLAUSES)
@given(data=st.data())
def test_item_raises_unless_exactly_one_element(device, mode, clause, error, data):
    t = data.draw(_not_one_element(device), label="t")
    with _scalar_outputs(mode), assert_raises(error, clause=clause, what=f"item() of a {t.dtype} tensor with {t.numel()} elements ({mode})"):
        mode.run(lambda t: t.item(), t)


def _matches_shape(value, shape) -> bool:
    if not shape:
        return not isinstance(value, list)
    return isinstance(value, list) and len(value) == shape[0] and all(_matches_shape(v, shape[1:]) for v in value)


def _flatten(value) -> list:
    return [leaf for item in value for leaf in _flatten(item)] if isinstance(value, list) else [value]


@pytest.mark.spec("XFER-10")
@pytest.mark.parametrize("presented", list(PRESENTATIONS))
@given(data=st.data())
def test_tolist_matches_the_shape(device, mode, presented, data):
    t = _presented(data, device, presented)
    with _scalar_outputs(mode):
        result = mode.run(lambda t: t.tolist(), t)
    assert_equal(_matches_shape(result, tuple(t.shape)), True, clause="XFER-10", what=f"nesting of tolist() of shape {tuple(t.shape)}: {result!r} ({mode})")
    elements = _flatten(result)
    kinds = {type(v) for v in elements}
    if elements and kinds != {_python_kind(t.dtype)}:
        fail("XFER-10", f"tolist() of a {t.dtype} tensor should hold {_python_kind(t.dtype).__name__}s, got {kinds} ({mode})")
    rebuilt = torch.tensor(elements, dtype=t.dtype)
    expected = t.detach().cpu().reshape(-1)
    if not (torch.equal(rebuilt, expected) or bool((rebuilt != expected).logical_and(expected.isnan()).any())):
        fail("XFER-10", f"the elements of tolist() {elements} differ from the tensor's {expected} ({mode})")
