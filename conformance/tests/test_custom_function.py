"""Custom torch.autograd.Function: apply, ctx methods, backward and jvp.  Spec: specs/custom_function.md.

The Functions wrap registry ops (``conformance/testlib/custom_functions.py``): forward computes a drawn op
form, backward returns the op's vector-Jacobian product times a drawn scale, so the gradients a test reads
show that *this* backward ran.  Where a clause is about what reaches ``backward`` (``needs_input_grad``,
materialized or ``None`` gradients, the gradient of a non-differentiable output), backward encodes what it
saw in the gradient it returns: no side effects, so the same user program compiles whole.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_requires_grad, assert_succeeds
from conformance.testlib.custom_functions import CALL_FORMS, applications, call_forms, vjp, wrapping
from conformance.testlib.graphs import aliases_an_operand
from conformance.testlib.ops import ops_by_name
from conformance.testlib.strategies import REAL_DTYPES, shapes, tensors

SCALES = st.sampled_from([2.0, -0.5, 3.0])


def _reference(app, weight) -> list:
    """The op's own gradients of ``(form(*inputs) * weight).sum()`` w.r.t. each input (None where not required)."""
    leaves = [x.detach().requires_grad_(x.requires_grad) for x in app.inputs]
    wanted = [x for x in leaves if x.requires_grad]
    grads = iter(torch.autograd.grad((app.form(*leaves) * weight).sum(), wanted, allow_unused=True))
    return [next(grads) if x.requires_grad else None for x in leaves]


def _weight(data, out):
    return data.draw(tensors(dtype=out.dtype, shape=tuple(out.shape), device=out.device), label="weight of the loss")


# ----------------------------------------------------------------------------- FUNC-1


@pytest.mark.spec("FUNC-1")
@given(data=st.data())
def test_outputs_require_grad_iff_an_input_does(device, mode, data):
    app = data.draw(applications(device=device, mode=mode), label="application")
    call = data.draw(st.sampled_from(CALL_FORMS), label="call form")
    enabled = data.draw(st.booleans(), label="grad mode enabled")
    program = mode.compile(call_forms(wrapping(app.form), call))
    with torch.set_grad_enabled(enabled):
        out = program(*app.inputs, 1.0)
    if enabled:
        expected, where = any(x.requires_grad for x in app.inputs), "in grad mode"
    else:
        # a view of an input that forward returns was taken under no_grad, and keeps its base's requires_grad
        # (GRADMODE-3); any other output, an input returned as is among them, requires no grad
        with torch.no_grad():
            plain = app.form(*app.inputs)
        base = next((i for i, x in enumerate(app.inputs) if plain is not x and aliases_an_operand(plain, [x])), None)
        expected = base is not None and app.inputs[base].requires_grad
        where = "under torch.no_grad()" + ("" if base is None else f", forward returning a view of x{base} (GRADMODE-3)")
    assert_requires_grad(out, expected, clause="FUNC-1", what=f"the output of `{call}` {where} ({mode})\n{app!r}\n")


@pytest.mark.spec("FUNC-1")
@given(data=st.data())
def test_one_input_requiring_grad_is_enough(device, mode, data):
    """Two tensor arguments, exactly one of which requires grad: the output requires grad in grad mode."""
    app = data.draw(applications(device=device, mode=mode, requires_grad="one", arity=2), label="application")
    call = data.draw(st.sampled_from(CALL_FORMS), label="call form")
    out = mode.compile(call_forms(wrapping(app.form), call))(*app.inputs, 1.0)
    assert_requires_grad(out, True, clause="FUNC-1", what=f"the output of `{call}` in grad mode when one of its two tensor arguments requires grad ({mode})\n{app!r}\n")


@pytest.mark.spec("FUNC-1")
@given(data=st.data())
def test_integral_outputs_never_require_grad(device, mode, data):
    x = data.draw(tensors(dtype=st.sampled_from(REAL_DTYPES), shape=shapes(min_dims=1, min_side=1, max_side=3), device=device, requires_grad=True), label="x")
    integral = data.draw(st.sampled_from([torch.int64, torch.int32, torch.bool]), label="integral output dtype")

    class WithIndex(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, (x > 0).to(integral)

        @staticmethod
        def backward(ctx, grad, _):
            return grad * 2

    value, index = mode.run(lambda x: WithIndex.apply(x), x)
    assert_requires_grad(value, True, clause="FUNC-1", what=f"the floating output of a Function applied to a tensor that requires grad ({mode})")
    assert_requires_grad(index, False, clause="FUNC-1", what=f"the {integral} output of a Function applied to a tensor that requires grad ({mode})")


# ----------------------------------------------------------------------------- FUNC-2


@pytest.mark.spec("FUNC-2")
@given(data=st.data())
def test_backward_returns_are_the_input_gradients(device, mode, data):
    app = data.draw(applications(device=device, mode=mode, requires_grad="some"), label="application")
    call = data.draw(st.sampled_from(CALL_FORMS), label="call form")
    scale = data.draw(SCALES, label="scale backward applies")
    via = data.draw(st.sampled_from(["loss.backward()", "torch.autograd.grad"]), label="backward pass")
    program = mode.compile(call_forms(wrapping(app.form, scale=scale), call))
    out = program(*app.inputs, scale)
    weight = _weight(data, out)
    loss = (out * weight).sum()
    wanted = [x for x in app.inputs if x.requires_grad]
    if via == "loss.backward()":
        loss.backward()
        got = [x.grad for x in wanted]
    else:
        got = list(torch.autograd.grad(loss, wanted))
    expected = [g for g in _reference(app, weight) if g is not None]
    for index, (actual, reference) in enumerate(zip(got, expected)):
        assert_close(actual, reference * scale, clause="FUNC-2", what=f"gradient ({via}) of input {index} that requires grad: backward's return ({scale} x the op's vjp), `{call}` ({mode})\n{app!r}\n")


# ----------------------------------------------------------------------------- FUNC-3

INPLACE_CHANGES = {
    "x.add_(1)": lambda x: x.add_(1),
    "x.mul_(2)": lambda x: x.mul_(2),
    "x.zero_()": lambda x: x.zero_(),
    "x[...] = 0": lambda x: x.__setitem__(Ellipsis, 0),
}


@pytest.mark.spec("FUNC-3")
@given(data=st.data())
def test_saved_tensor_changed_in_place_raises_at_backward(device, mode, data):
    app = data.draw(applications(device=device, mode=mode, requires_grad="some", computes=True), label="application")
    changed = data.draw(st.integers(0, len(app.inputs) - 1), label="saved input changed in place")
    change = data.draw(st.sampled_from(sorted(INPLACE_CHANGES)), label="in-place change")
    # a leaf that requires grad cannot be changed in place: the Function gets a copy of it (a non-leaf)
    inputs = [x.clone() if x.requires_grad else x for x in app.inputs]
    function = wrapping(app.form, reads_saved=True)
    out = mode.run(lambda *args: function.apply(*args), *inputs, 1.0)
    with torch.no_grad():
        INPLACE_CHANGES[change](inputs[changed])
    with assert_raises(RuntimeError, match="modified by an inplace operation", clause="FUNC-3", what=f"backward after `{change}` on saved input x{changed} ({mode})\n{app!r}\n"):
        out.sum().backward()


@pytest.mark.spec("FUNC-3")
@given(data=st.data())
def test_saved_tensor_changed_in_place_raises_even_if_backward_ignores_its_value(device, mode, data):
    """Pinned: a Function that saves its input but whose backward (of ``-x``) does not read the value.  The check
    is on what was saved, not on what backward uses (compiled code drops it: see the expectations file)."""
    x = data.draw(tensors(dtype=st.sampled_from(REAL_DTYPES), shape=shapes(min_side=1, max_side=3), device=device, requires_grad=True), label="x")
    change = data.draw(st.sampled_from(sorted(INPLACE_CHANGES)), label="in-place change")

    class Neg(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return -x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return -grad

    copy = x.clone()
    out = mode.run(lambda x: Neg.apply(x), copy)
    with torch.no_grad():
        INPLACE_CHANGES[change](copy)
    with assert_raises(RuntimeError, match="modified by an inplace operation", clause="FUNC-3", what=f"backward after `{change}` on the saved input of a Function whose backward does not read it ({mode})"):
        out.sum().backward()


@pytest.mark.spec("FUNC-3")
@given(data=st.data())
def test_saved_tensors_are_the_saved_values(device, mode, data):
    x = data.draw(tensors(dtype=st.sampled_from(REAL_DTYPES), shape=shapes(min_side=1, max_side=3), device=device, requires_grad=True), label="x")
    y = data.draw(tensors(dtype=x.dtype, shape=tuple(x.shape), device=device), label="y")

    class SavesInputAndOutput(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            out = x * y
            ctx.save_for_backward(x, y, out)
            return out

        @staticmethod
        def backward(ctx, grad):
            x, y, out = ctx.saved_tensors
            return grad * (y + out), None  # d/dx of x*y is y; `out` is added so the saved output counts

    out = mode.run(lambda x, y: SavesInputAndOutput.apply(x, y), x, y)
    out.sum().backward()
    assert_close(x.grad, y + x.detach() * y, clause="FUNC-3", what=f"a gradient computed from ctx.saved_tensors (input y and output x*y) ({mode})")


# ----------------------------------------------------------------------------- FUNC-4


@pytest.mark.spec("FUNC-4")
@given(data=st.data())
def test_needs_input_grad_says_which_inputs_require_grad(device, mode, data):
    app = data.draw(applications(device=device, mode=mode, requires_grad="some"), label="application")
    form = app.form

    class Reports(torch.autograd.Function):
        """backward returns, for every input, a tensor filled with the code of ctx.needs_input_grad"""

        @staticmethod
        def forward(ctx, *args):
            *inputs, _ = args
            return form(*inputs)

        @staticmethod
        def backward(ctx, grad):
            code = 1.0 + sum(2.0 ** (i + 1) * flag for i, flag in enumerate(ctx.needs_input_grad))
            return tuple(torch.full_like(x, code) for x in app.inputs) + (None,)

    out = mode.run(lambda *args: Reports.apply(*args), *app.inputs, 0.5)
    out.sum().backward()
    expected = tuple(x.requires_grad for x in app.inputs) + (False,)  # the last argument is a Python float
    code = 1.0 + sum(2.0 ** (i + 1) * flag for i, flag in enumerate(expected))
    for index, x in enumerate(app.inputs):
        if x.requires_grad:
            assert_close(x.grad, torch.full_like(x, code), clause="FUNC-4", what=f"x{index}.grad: backward's report of ctx.needs_input_grad, which should be {expected} (the inputs' requires_grad, then False for the float argument) ({mode})\n{app!r}\n")


# ----------------------------------------------------------------------------- FUNC-5


#: in-place changes a Function makes to its input: the change, its derivative
DIRTY_CHANGES = {
    "x.mul_(-3.0)": (lambda x: x.mul_(-3.0), -3.0),
    "x.mul_(0.5)": (lambda x: x.mul_(0.5), 0.5),
    "x.add_(1.0)": (lambda x: x.add_(1.0), 1.0),
    "x.neg_()": (lambda x: x.neg_(), -1.0),
}


@pytest.mark.spec("FUNC-5")
@given(data=st.data())
def test_mark_dirty_returns_the_input_with_the_function_as_history(device, mode, data):
    leaf = data.draw(tensors(dtype=st.sampled_from(REAL_DTYPES), shape=shapes(min_side=1, max_side=3), device=device, requires_grad=True), label="leaf")
    change_name = data.draw(st.sampled_from(sorted(DIRTY_CHANGES)), label="in-place change forward makes")
    change, derivative = DIRTY_CHANGES[change_name]
    scale = data.draw(SCALES, label="extra scale backward applies")

    class ChangeInPlace(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            change(x)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad * derivative * scale

    x = leaf.clone()  # a non-leaf: an in-place change of it is allowed
    expected = change(leaf.detach().clone())
    program = mode.compile(lambda x: ChangeInPlace.apply(x))
    out = program(x)
    assert_equal(out is x, True, clause="FUNC-5", what=f"`apply(x) is x` for a Function that changes x with `{change_name}` and marks it dirty ({mode})")
    assert_close(x, expected, clause="FUNC-5", what=f"x after the Function's `{change_name}` ({mode})")
    x.sum().backward()  # through the input itself: its history is now the Function
    assert_close(leaf.grad, torch.full_like(leaf, derivative * scale), clause="FUNC-5", what=f"gradient through the dirty input x: the Function's backward ({derivative} x {scale}) ({mode})")


# ----------------------------------------------------------------------------- FUNC-6


@pytest.mark.spec("FUNC-6")
@given(data=st.data())
def test_mark_non_differentiable_output(device, mode, data):
    app = data.draw(applications(device=device, mode=mode, requires_grad="some"), label="application")
    form = app.form

    class WithFloor(torch.autograd.Function):
        """returns the op's result and its floor, the floor marked non-differentiable"""

        @staticmethod
        def forward(ctx, *inputs):
            out = form(*inputs)
            floor = out.floor()
            ctx.mark_non_differentiable(floor)
            ctx.save_for_backward(*inputs)
            ctx.floor_shape = floor.shape
            return out, floor

        @staticmethod
        def backward(ctx, grad, grad_floor):
            if grad_floor is None or grad_floor.shape != ctx.floor_shape:
                return tuple(torch.full_like(x, float("nan")) for x in ctx.saved_tensors)
            # a zero gradient of the floor adds nothing; any other value shows in the result
            return tuple(g + grad_floor.abs().sum() * 1000 for g in vjp(form, ctx.saved_tensors, grad))

    out, floor = mode.run(lambda *xs: WithFloor.apply(*xs), *app.inputs)
    assert_requires_grad(floor, False, clause="FUNC-6", what=f"the output marked non-differentiable ({mode})\n{app!r}\n")
    assert_requires_grad(out, True, clause="FUNC-6", what=f"the other output ({mode})\n{app!r}\n")
    weight = _weight(data, out)
    ((out * weight).sum() + floor.sum()).backward()
    for index, (x, reference) in enumerate(zip(app.inputs, _reference(app, weight))):
        if x.requires_grad:
            assert_close(x.grad, reference, clause="FUNC-6", what=f"x{index}.grad: backward got a zero tensor of the non-differentiable output's shape for it ({mode})\n{app!r}\n")


# ----------------------------------------------------------------------------- FUNC-7

MATERIALIZE = {"default": None, "set_materialize_grads(True)": True, "set_materialize_grads(False)": False}
NONE_MARK = 3.0  # what backward adds to the gradient when the unused output's gradient is None


@pytest.mark.spec("FUNC-7")
@pytest.mark.parametrize("materialize", sorted(MATERIALIZE))
@given(data=st.data())
def test_materialize_grads(device, mode, materialize, data):
    app = data.draw(applications(device=device, mode=mode, requires_grad="some"), label="application")
    form, setting = app.form, MATERIALIZE[materialize]

    class TwoOutputs(torch.autograd.Function):
        """returns the op's result and a copy of x0; the loss uses only the first"""

        @staticmethod
        def forward(ctx, *inputs):
            if setting is not None:
                ctx.set_materialize_grads(setting)
            ctx.save_for_backward(*inputs)
            return form(*inputs), inputs[0].clone()

        @staticmethod
        def backward(ctx, grad, grad_copy):
            grads = vjp(form, ctx.saved_tensors, grad)
            if grad_copy is None:
                return tuple(g + NONE_MARK for g in grads)
            return (grads[0] + grad_copy * 1000,) + tuple(grads[1:])  # zeros add nothing

    out, _ = mode.run(lambda *xs: TwoOutputs.apply(*xs), *app.inputs)
    weight = _weight(data, out)
    (out * weight).sum().backward()
    mark = NONE_MARK if setting is False else 0.0
    seen = "None" if setting is False else "a zero tensor"
    for index, (x, reference) in enumerate(zip(app.inputs, _reference(app, weight))):
        if x.requires_grad:
            assert_close(x.grad, reference + mark, clause="FUNC-7", what=f"x{index}.grad: with {materialize}, backward gets {seen} for the unused output ({mode})\n{app!r}\n")


# ----------------------------------------------------------------------------- FUNC-8


@pytest.mark.spec("FUNC-8")
@given(data=st.data())
def test_once_differentiable_double_backward_raises(device, mode, data):
    app = data.draw(applications(device=device, mode=mode, requires_grad="some"), label="application")
    function = wrapping(app.form, once=True)
    out = mode.run(lambda *xs: function.apply(*xs), *app.inputs, 1.0)
    v = data.draw(tensors(dtype=out.dtype, shape=tuple(out.shape), device=device, requires_grad=True), label="grad_output (requires grad)")
    wanted = [x for x in app.inputs if x.requires_grad]
    with assert_succeeds(clause="FUNC-8", what=f"the first backward through a once_differentiable backward ({mode})\n{app!r}\n"):
        grads = torch.autograd.grad(out, wanted, v, create_graph=True)
    total = sum(g.sum() for g in grads)
    second = data.draw(st.sampled_from(["total.backward()", "torch.autograd.grad(total, grad_output)"]), label="second-order pass")
    with assert_raises(RuntimeError, clause="FUNC-8", what=f"a second-order pass `{second}` through a once_differentiable backward ({mode})\n{app!r}\n"):
        if second == "total.backward()":
            total.backward()
        else:
            torch.autograd.grad(total, v)


# ----------------------------------------------------------------------------- FUNC-9


@pytest.mark.spec("FUNC-9")
@given(data=st.data())
def test_setup_context_style_equals_the_ctx_style(device, mode, data):
    # not a forward returning its input as is: the setup_context style cannot save it (the spec's note)
    app = data.draw(applications(device=device, mode=mode, requires_grad="any", as_is=False), label="application")
    call = data.draw(st.sampled_from(CALL_FORMS), label="call form")
    scale = data.draw(SCALES, label="scale backward applies")
    results = {}
    for style in ("ctx", "setup_context"):
        inputs = [x.detach().requires_grad_(x.requires_grad) for x in app.inputs]
        program = mode.compile(call_forms(wrapping(app.form, scale=scale, style=style), call))
        with assert_succeeds(clause="FUNC-9", what=f"`{call}` of a {style}-style Function and its backward ({mode})\n{app!r}\n"):
            out = program(*inputs, scale)
            if out.requires_grad:
                out.sum().backward()
        results[style] = (out, [x.grad for x in inputs])
    (out_ctx, grads_ctx), (out_sc, grads_sc) = results["ctx"], results["setup_context"]
    assert_close(out_sc, out_ctx, clause="FUNC-9", what=f"output of the setup_context-style Function ({mode})\n{app!r}\n")
    assert_requires_grad(out_sc, out_ctx.requires_grad, clause="FUNC-9", what=f"output of the setup_context-style Function ({mode})\n{app!r}\n")
    for index, (a, b) in enumerate(zip(grads_sc, grads_ctx)):
        if b is not None:
            assert_close(a, b, clause="FUNC-9", what=f"x{index}.grad through the setup_context-style Function (as the ctx style) ({mode})\n{app!r}\n")


# ----------------------------------------------------------------------------- FUNC-10

#: Functions with a jvp staticmethod: forward, and the exact tangent of the op (what jvp returns, times a scale)
JVP_OPS = {
    "sin": (lambda x, y: x.sin(), lambda x, y, tx, ty: tx * x.cos()),
    "x * y": (lambda x, y: x * y, lambda x, y, tx, ty: tx * y + x * ty),
    "exp(x) + y": (lambda x, y: x.exp() + y, lambda x, y, tx, ty: tx * x.exp() + ty),
}


@pytest.mark.spec("FUNC-10")
@given(data=st.data())
def test_jvp_gives_the_forward_mode_tangent(device, mode, data):
    import torch.autograd.forward_ad as fwAD

    name = data.draw(st.sampled_from(sorted(JVP_OPS)), label="op")
    forward, tangent_of = JVP_OPS[name]
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    shape = data.draw(shapes(min_side=1, max_side=3), label="shape")
    x, y, tx, ty = (data.draw(tensors(dtype=dtype, shape=shape, device=device), label=label) for label in ("x", "y", "x tangent", "y tangent"))
    scale = data.draw(SCALES, label="scale jvp applies")

    class WithJvp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            ctx.save_for_forward(x, y)
            return forward(x, y)

        @staticmethod
        def jvp(ctx, tx, ty):
            x, y = ctx.saved_tensors
            return tangent_of(x, y, tx, ty) * scale

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("not used: forward mode only")

    program = mode.compile(lambda x, y: WithJvp.apply(x, y))
    with fwAD.dual_level():
        out = program(fwAD.make_dual(x, tx), fwAD.make_dual(y, ty))
        primal, tangent = fwAD.unpack_dual(out)
    assert_close(primal, forward(x, y), clause="FUNC-10", what=f"primal of `{name}` with a jvp staticmethod ({mode})")
    assert_close(tangent, tangent_of(x, y, tx, ty) * scale, clause="FUNC-10", what=f"tangent of `{name}`: what jvp returned ({scale} x the exact one) ({mode})")


# ----------------------------------------------------------------------------- FUNC-11


def _transformable(data, device, mode):
    """An application whose op vmap can batch (every op but the value-dependent masked_select), plain inputs."""
    from conformance.testlib.ops import OPS

    ops = [op for op in OPS if op.compiles_whole]
    return data.draw(applications(device=device, mode=mode, requires_grad="none", ops=ops, dtype=st.just(torch.float64), as_is=False), label="application")


@pytest.mark.spec("FUNC-11")
@given(data=st.data())
def test_torch_func_grad_and_vmap_of_a_setup_context_function(device, mode, data):
    app = _transformable(data, device, mode)
    scale = data.draw(SCALES, label="scale backward applies")
    argnum = data.draw(st.integers(0, len(app.inputs) - 1), label="argnums")
    function = wrapping(app.form, scale=scale, style="setup_context")
    function.generate_vmap_rule = True
    probe = app.form(*app.inputs)
    weight = data.draw(tensors(dtype=probe.dtype, shape=tuple(probe.shape), device=device), label="weight of the loss")

    def loss(*inputs):
        return (function.apply(*inputs, scale) * weight).sum()

    grad = mode.run(lambda *inputs: torch.func.grad(loss, argnums=argnum)(*inputs), *app.inputs)
    reference = _reference(type(app)(app.form, [x.detach().requires_grad_(i == argnum) for i, x in enumerate(app.inputs)]), weight)[argnum]
    assert_close(grad, reference * scale, clause="FUNC-11", what=f"torch.func.grad(argnums={argnum}) through a setup_context-style Function: its backward's return ({scale} x the op's vjp) ({mode})\n{app!r}\n")
    batch = data.draw(st.integers(1, 3), label="batch size")
    batched = [torch.stack([x + k for k in range(batch)]) for x in app.inputs]
    out = mode.run(lambda *inputs: torch.func.vmap(lambda *xs: function.apply(*xs, scale))(*inputs), *batched)
    expected = torch.stack([app.form(*[x + k for x in app.inputs]) for k in range(batch)])
    assert_close(out, expected, clause="FUNC-11", what=f"torch.func.vmap over a setup_context-style Function with generate_vmap_rule=True: the per-sample outputs ({mode})\n{app!r}\n")


@pytest.mark.spec("FUNC-11")
@given(data=st.data())
def test_torch_func_transform_of_a_ctx_style_function_raises(device, mode, data):
    app = _transformable(data, device, mode)
    transform = data.draw(st.sampled_from(["torch.func.grad", "torch.func.vmap"]), label="transform")
    function = wrapping(app.form, style="ctx")
    if transform == "torch.func.grad":
        program = lambda *inputs: torch.func.grad(lambda *xs: function.apply(*xs, 1.0).sum())(*inputs)  # noqa: E731
        args = app.inputs
    else:
        program = lambda *inputs: torch.func.vmap(lambda *xs: function.apply(*xs, 1.0))(*inputs)  # noqa: E731
        args = [torch.stack([x, x]) for x in app.inputs]
    with assert_raises(RuntimeError, match="setup_context", clause="FUNC-11", what=f"`{transform}` of a Function written with forward(ctx, ...) ({mode})\n{app!r}\n"):
        mode.run(program, *args)
