"""Complex autograd: the conjugate Wirtinger derivative.  Spec: specs/complex_numbers.md."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_succeeds, fail
from conformance.testlib.ops import KINDS, OPS
from conformance.testlib.references import agrees_with_finite_differences
from conformance.testlib.strategies import COMPLEX_DTYPES, REAL_DTYPES, shapes, tensors

SMALL = dict(max_dims=2, max_side=3)

#: the registry ops whose kernels and derivatives take complex operands (the others: comparisons, clamps,
#: max-like reductions and softmax have no complex kernel; logsumexp has none on torch 2.4.1 (2.8.0 has one), which refuses
#: "Expected floating point type for result tensor")
NOT_COMPLEX = {"relu", "gelu", "clamp", "maximum", "atan2", "where", "amax", "softmax", "masked_select", "logsumexp"}
COMPLEX_OPS = tuple(op for op in OPS if op.name not in NOT_COMPLEX)

#: both gradient spellings: .grad after backward(), and what torch.autograd.grad returns
PASSES = ("backward()", "torch.autograd.grad")


def _gradients(pass_: str, loss: torch.Tensor, leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    if pass_ == "backward()":
        loss.backward()
        return [leaf.grad for leaf in leaves]
    return list(torch.autograd.grad(loss, leaves))


# --------------------------------------------------------------------------------------------- COMPLEX-1

#: real losses of complex z and w, as source text, and their gradients ∂L/∂x + i·∂L/∂y for z (and for w, where the loss uses it)
CLOSED_FORMS = {
    "(z.abs() ** 2).sum()": (lambda z, w: (z.abs() ** 2).sum(), lambda z, w: (2 * z,)),
    "(z * z.conj()).real.sum()": (lambda z, w: (z * z.conj()).real.sum(), lambda z, w: (2 * z,)),
    "torch.view_as_real(z).square().sum()": (lambda z, w: torch.view_as_real(z).square().sum(), lambda z, w: (2 * z,)),
    "torch.real(z * w.conj()).sum()": (lambda z, w: torch.real(z * w.conj()).sum(), lambda z, w: (w, z)),
    "(z * w).real.sum()": (lambda z, w: (z * w).real.sum(), lambda z, w: (w.conj(), z.conj())),
    "(z * z).real.sum()": (lambda z, w: (z * z).real.sum(), lambda z, w: (2 * z.conj(),)),
    "torch.imag(z).sum()": (lambda z, w: torch.imag(z).sum(), lambda z, w: (torch.full_like(z, 1j),)),
    "((z * w).abs() ** 2).sum()": (lambda z, w: ((z * w).abs() ** 2).sum(), lambda z, w: (2 * z * w.abs() ** 2, 2 * w * z.abs() ** 2)),
    "torch.vdot(w.flatten(), z.flatten()).real": (lambda z, w: torch.vdot(w.flatten(), z.flatten()).real, lambda z, w: (w, z)),
}


@pytest.mark.spec("COMPLEX-1")
@pytest.mark.parametrize("pass_", PASSES)
@given(data=st.data())
def test_gradient_of_a_real_loss_is_the_conjugate_wirtinger_derivative(device, mode, pass_, data):
    source = data.draw(st.sampled_from(sorted(CLOSED_FORMS)), label="loss")
    loss_fn, expected_fn = CLOSED_FORMS[source]
    dtype = data.draw(st.sampled_from(COMPLEX_DTYPES), label="dtype")
    shape = data.draw(shapes(min_dims=1, min_side=1, **SMALL), label="shape")
    z = data.draw(tensors(dtype=dtype, shape=shape, device=device, requires_grad=True), label="z")
    w = data.draw(tensors(dtype=dtype, shape=shape, device=device, requires_grad=True), label="w")
    loss = mode.compile(loss_fn)(z, w)
    assert_equal(loss.dtype.is_complex, False, clause="COMPLEX-1", what=f"whether the loss `{source}` is complex")
    expected = expected_fn(z.detach(), w.detach())
    grads = _gradients(pass_, loss, [z, w][: len(expected)])
    for name, grad, want in zip("zw", grads, expected):
        what = f"the gradient for {name} of the real loss `{source}` by {pass_} ({dtype}, {mode}): ∂L/∂x + i·∂L/∂y"
        if grad is None:
            fail("COMPLEX-1", f"{what}: expected a tensor, got None")
        assert_equal(grad.dtype, dtype, clause="COMPLEX-1", what=f"the dtype of {what}")
        assert_close(grad, want, clause="COMPLEX-1", what=what, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------- COMPLEX-2


@st.composite
def complex_programs(draw, device):
    """A registry op form with complex operands of a drawn shape, the operands (complex128 leaves) and a direction per leaf."""
    shape = draw(shapes(min_dims=1, min_side=2, **SMALL), label="shape")  # a side of 2: a slice keeps an element
    probe = torch.zeros(shape, dtype=torch.complex128)
    op = draw(st.sampled_from([op for op in COMPLEX_OPS if op.applicable(probe)]), label="op")
    form = draw(st.sampled_from(op.forms), label="form")
    leaves = [draw(tensors(dtype=torch.complex128, shape=shape, device=device, requires_grad=True, low=0.5, high=1.5), label=name) for name in "ab"[: op.arity]]
    directions = [draw(tensors(dtype=torch.complex128, shape=shape, device=device), label=f"direction for {name}") for name in "ab"[: op.arity]]
    return form, leaves, directions


def _squared_magnitude_loss(form):
    def loss(*operands):
        return form(*operands).abs().square().sum()

    return loss


@pytest.mark.spec("COMPLEX-2")
@pytest.mark.parametrize("pass_", PASSES)
@given(data=st.data())
def test_negative_gradient_is_the_steepest_descent_direction(device, mode, pass_, data):
    """L = Σ|f(a, b)|² for a registry op f: the directional derivative along a drawn direction, by central
    differences, against Re(Σ conj(g)·d); and a small step against the gradient lowers L."""
    form, leaves, directions = data.draw(complex_programs(device), label="program")
    loss = _squared_magnitude_loss(form)
    grads = _gradients(pass_, mode.compile(loss)(*leaves), leaves)
    source = f"Σ|{form.source(*'ab'[: len(leaves)])}|²"
    h = 1e-6
    with torch.no_grad():
        for index, (grad, d) in enumerate(zip(grads, directions)):
            what = f"the gradient of {source} for {'ab'[index]} by {pass_} ({mode})"
            if grad is None:
                fail("COMPLEX-2", f"{what}: expected a tensor, got None")
            shifted = lambda step: loss(*[leaf + step * d if i == index else leaf for i, leaf in enumerate(leaves)])  # noqa: E731
            numeric = (shifted(h) - shifted(-h)) / (2 * h)
            assert_close((grad.conj() * d).real.sum(), numeric, clause="COMPLEX-2", what=f"Re(Σ conj(g)·d) with g {what}: the directional derivative along d by central differences", rtol=1e-5, atol=1e-6)
            lr = 1e-3 / (1 + grad.abs().max())
            before = loss(*leaves)
            stepped = loss(*[leaf - lr * grad if i == index else leaf for i, leaf in enumerate(leaves)])
            if not grad.any():  # a stationary point (f(a, b) = 0: L at its minimum): no step can lower L
                assert_close(stepped, before, clause="COMPLEX-2", what=f"L after a step {'ab'[index]} - lr·g with g = 0 ({what})")
            elif not stepped < before:
                fail("COMPLEX-2", f"a step {'ab'[index]} - lr·g against {what} (lr={float(lr):.3g}) should lower the loss, but it went from {float(before)} to {float(stepped)}")


# --------------------------------------------------------------------------------------------- COMPLEX-3

#: real-to-real functions of x and y (same shape, at least 1-D): through complex intermediates, and written with
#: real operations only
THROUGH_COMPLEX = {
    "torch.complex(x, y).abs().square().sum()": (lambda x, y: torch.complex(x, y).abs().square().sum(), lambda x, y: (x * x + y * y).sum()),
    "torch.view_as_complex(torch.stack([x, y], -1)).mul(0.5 - 2j).imag.sum()": (
        lambda x, y: torch.view_as_complex(torch.stack([x, y], -1).contiguous()).mul(0.5 - 2j).imag.sum(),
        lambda x, y: (0.5 * y - 2 * x).sum(),
    ),
    "torch.polar(y.abs() + 1, x).real.sum()": (lambda x, y: torch.polar(y.abs() + 1, x).real.sum(), lambda x, y: ((y.abs() + 1) * torch.cos(x)).sum()),
    "torch.exp(1j * x).imag.mul(y).sum()": (lambda x, y: torch.exp(1j * x).imag.mul(y).sum(), lambda x, y: (torch.sin(x) * y).sum()),
    "((y + x * 1j) ** 2).real.sum()": (lambda x, y: ((y + x * 1j) ** 2).real.sum(), lambda x, y: (y * y - x * x).sum()),
    "torch.fft.fft(x * y).abs().square().sum()": (lambda x, y: torch.fft.fft(x * y).abs().square().sum(), lambda x, y: (x * y).square().sum() * x.shape[-1]),
    "(torch.complex(x, y) * torch.complex(y, x)).abs().sum()": (
        lambda x, y: (torch.complex(x, y) * torch.complex(y, x)).abs().sum(),
        lambda x, y: (x * x + y * y).sum(),
    ),
}


@pytest.mark.spec("COMPLEX-3")
@pytest.mark.parametrize("pass_", PASSES)
@given(data=st.data())
def test_real_function_through_complex_intermediates_has_the_real_gradient(device, mode, pass_, data):
    source = data.draw(st.sampled_from(sorted(THROUGH_COMPLEX)), label="function")
    through_complex, real_only = THROUGH_COMPLEX[source]
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    shape = data.draw(shapes(min_dims=1, min_side=1, **SMALL), label="shape")
    x = data.draw(tensors(dtype=dtype, shape=shape, device=device, requires_grad=True), label="x")
    y = data.draw(tensors(dtype=dtype, shape=shape, device=device, requires_grad=True), label="y")
    value = mode.compile(through_complex)(x, y)
    assert_equal(value.dtype, dtype, clause="COMPLEX-3", what=f"the dtype of `{source}`")
    grads = _gradients(pass_, value, [x, y])
    expected = torch.autograd.grad(real_only(x, y), [x, y])
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else {}
    for name, grad, want in zip("xy", grads, expected):
        what = f"the gradient for {name} of `{source}` by {pass_} ({dtype}, {mode}): that of the same function in real operations"
        if grad is None:
            fail("COMPLEX-3", f"{what}: expected a tensor, got None")
        assert_equal(grad.dtype, dtype, clause="COMPLEX-3", what=f"the dtype of {what}")
        assert_close(grad, want, clause="COMPLEX-3", what=what, **tolerance)


# --------------------------------------------------------------------------------------------- COMPLEX-4

#: the spellings of a backward pass from a scalar without an explicit gradient
IMPLICIT = {
    "y.backward()": lambda y, z: y.backward(),
    "torch.autograd.backward(y)": lambda y, z: torch.autograd.backward(y),
    "torch.autograd.grad(y, z)": lambda y, z: torch.autograd.grad(y, z),
}
EXPLICIT = {
    "y.backward()": lambda y, z, v: y.backward(gradient=v),
    "torch.autograd.backward(y)": lambda y, z, v: torch.autograd.backward(y, grad_tensors=v),
    "torch.autograd.grad(y, z)": lambda y, z, v: torch.autograd.grad(y, z, grad_outputs=v),
}


@pytest.mark.spec("COMPLEX-4")
@pytest.mark.parametrize("spelling", sorted(IMPLICIT))
@given(data=st.data())
def test_backward_of_a_complex_scalar_needs_a_gradient(device, mode, spelling, data):
    dtype = data.draw(st.sampled_from(COMPLEX_DTYPES), label="dtype")
    z = data.draw(tensors(dtype=dtype, shape=shapes(min_dims=0, min_side=1, **SMALL), device=device, requires_grad=True), label="z")
    program = mode.compile(lambda z: (z * z).sum())
    y = program(z)
    with assert_raises(RuntimeError, match="real scalar outputs", clause="COMPLEX-4", what=f"`{spelling}` on the complex scalar y = (z * z).sum() without a gradient ({dtype}, {mode})"):
        IMPLICIT[spelling](y, z)
    v = torch.ones((), dtype=dtype, device=device)
    with assert_succeeds(clause="COMPLEX-4", what=f"`{spelling}` on the complex scalar y with gradient 1 + 0j ({mode})"):
        returned = EXPLICIT[spelling](program(z), z, v)
    grad = returned[0] if returned is not None else z.grad
    assert_close(grad, 2 * z.detach().conj(), clause="COMPLEX-4", what=f"the gradient `{spelling}` gives for z with gradient 1 + 0j: conj(∂y/∂z) = 2·conj(z)", rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------- COMPLEX-5


@pytest.mark.spec("COMPLEX-5")
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_gradcheck_passes_on_complex_operations(device, mode, kind, data):
    """One registry op of ``kind`` that takes complex operands, in one of its forms, on complex128 operands away
    from 0 (``abs`` is not differentiable there): gradcheck of reverse mode, slow or fast."""
    shape = data.draw(shapes(min_dims=1, min_side=1, **SMALL), label="shape")
    probe = torch.zeros(shape, dtype=torch.complex128)
    op = data.draw(st.sampled_from([op for op in COMPLEX_OPS if op.kind == kind and op.applicable(probe) and (op.compiles_whole or not mode.compiled)]), label="op")
    form = data.draw(st.sampled_from(op.forms), label="form")
    operands = [data.draw(tensors(dtype=torch.complex128, shape=shape, device=device, requires_grad=True, low=0.5, high=1.5), label=name) for name in "ab"[: op.arity]]
    fast = data.draw(st.booleans(), label="gradcheck fast_mode")
    agrees_with_finite_differences(mode.compile(form.fn), operands, clause="COMPLEX-5", fast_mode=fast,
                                   what=f"the Wirtinger derivatives of `{form.source(*'ab'[: op.arity])}` on complex128 {tuple(shape)} by reverse mode ({mode})")
