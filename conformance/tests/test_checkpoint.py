"""Activation checkpointing: torch.utils.checkpoint.  Spec: specs/checkpoint.md."""

from __future__ import annotations

import torch
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import (
    assert_close,
    assert_does_not_warn,
    assert_equal,
    assert_raises,
    assert_requires_grad,
    assert_succeeds,
    assert_warns,
)
from conformance.testlib.checkpointing import VARIANTS, checkpointed, checkpointed_sequential, squares_of_every_step
from conformance.testlib.graphs import graphs
from conformance.testlib.networks import draw_mlp, fill_drawn, mlp
from conformance.testlib.strategies import REAL_DTYPES, shapes, tensors

nn = torch.nn

#: small programs: the ci profile runs every test in a few seconds
SMALL = shapes(max_dims=2, min_side=1, max_side=3)
REENTRANT_GRAD_MATCH = r"\.grad\(\)"
NO_INPUT_WARNING = "None of the inputs have requires_grad=True"


def _graph(data, device, mode):
    return data.draw(
        graphs(device=device, dtype=torch.float64, requires_grad=st.booleans(), recording=True, max_steps=4, base_shape=SMALL, mode=mode),
        label="graph",
    )


def _used_leaves(graph) -> list[int]:
    """Indices of the leaves that require grad and that some step of the program was computed from."""
    used = frozenset().union(*(graph.leaves_behind(len(graph.leaves) + s) for s in range(len(graph.steps))))
    return [i for i, leaf in enumerate(graph.leaves) if leaf.requires_grad and i in used]


def _grads(loss: torch.Tensor, tensors: list) -> list:
    return list(torch.autograd.grad(loss, tensors, allow_unused=True))


#: how the backward pass through the checkpointed output is run (what both variants support)
BACKWARD_FORMS = {
    "y.backward()": lambda y: y.backward(),
    "torch.autograd.backward(y)": lambda y: torch.autograd.backward(y),
    "torch.autograd.backward([y])": lambda y: torch.autograd.backward([y]),
}


@pytest.mark.spec("CKPT-1")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@given(data=st.data())
def test_checkpointed_program_has_the_uncheckpointed_gradients(device, mode, variant, data):
    graph = _graph(data, device, mode)
    loss = squares_of_every_step(graph.program)
    used = _used_leaves(graph)
    expected_value = loss(*graph.leaves)
    expected = dict(zip(used, _grads(expected_value, [graph.leaves[i] for i in used])))
    form = data.draw(st.sampled_from(sorted(BACKWARD_FORMS)), label="backward form")
    program = mode.compile(lambda *leaves: checkpointed(loss, *leaves, use_reentrant=VARIANTS[variant]))
    y = program(*graph.leaves)
    assert_close(y, expected_value, clause="CKPT-1", what=f"the value of checkpoint(f, *leaves, {variant}) ({mode})\n{graph!r}\n")
    with assert_succeeds(clause="CKPT-1", what=f"`{form}` through checkpoint(f, *leaves, {variant}) ({mode})"):
        BACKWARD_FORMS[form](y)
    for index, leaf in enumerate(graph.leaves):
        if index not in expected:
            assert_equal(leaf.grad, None, clause="CKPT-1", what=f".grad of t{index}, which f does not use or which does not require grad, after `{form}` through checkpoint(..., {variant})")
            continue
        assert_close(
            leaf.grad,
            expected[index],
            clause="CKPT-1",
            what=f".grad of t{index} after `{form}` through checkpoint(f, *leaves, {variant}) ({mode}) vs the uncheckpointed f\n{graph!r}\n",
        )


#: what is checkpointed in a network: the module itself, or a function calling it
MODULE_FORMS = {
    "checkpoint(net, x)": lambda net: net,
    "checkpoint(lambda x: net(x).tanh(), x)": lambda net: (lambda x: net(x).tanh()),
}


def _uncheckpointed(form: str, net):
    return MODULE_FORMS[form](net)


@pytest.mark.spec("CKPT-1")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@given(data=st.data())
def test_checkpointed_module_has_the_uncheckpointed_parameter_gradients(device, mode, variant, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    net = draw_mlp(data, device, dtype=dtype)
    x = data.draw(tensors(dtype=dtype, shape=st.tuples(st.integers(1, 3), st.just(net[0].in_features)), device=device, requires_grad=True), label="x")
    form = data.draw(st.sampled_from(sorted(MODULE_FORMS)), label="what is checkpointed")
    fn = _uncheckpointed(form, net)
    params = list(net.parameters())
    expected = _grads(fn(x).sum(), [x] + params)
    program = mode.compile(lambda x: checkpointed(fn, x, use_reentrant=VARIANTS[variant]).sum())
    program(x).backward()
    names = ["x"] + [f"net.{name}" for name, _ in net.named_parameters()]
    for name, tensor, want in zip(names, [x] + params, expected):
        assert_close(tensor.grad, want, clause="CKPT-1", what=f"{name}.grad after `{form}` with {variant} ({mode}) vs the uncheckpointed module")


@pytest.mark.spec("CKPT-2")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@given(data=st.data())
def test_dropout_inside_a_checkpoint_gets_the_uncheckpointed_gradients(device, mode, variant, data):
    """The RNG state is stashed and restored by default, so the recomputation draws the same dropout mask: the
    gradients equal those of the same program without the checkpoint, run the same way (compiled code may draw
    other masks than eager code from one seed, on CUDA it does: that is not what this clause is about)."""
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    widths = data.draw(st.lists(st.integers(3, 4), min_size=3, max_size=3), label="widths")
    net = fill_drawn(mlp(widths, activation=nn.Tanh, dropout=(0.5,)).to(device=device, dtype=dtype), data, device, label="net").train()
    x = data.draw(tensors(dtype=dtype, shape=(data.draw(st.integers(2, 3), label="batch"), widths[0]), device=device, requires_grad=True), label="x")
    preserve = data.draw(st.sampled_from(["default", "preserve_rng_state=True"]), label="preserve_rng_state")
    kwargs = {} if preserve == "default" else {"preserve_rng_state": True}
    seed = data.draw(st.integers(0, 2**31 - 1), label="torch seed")
    params = list(net.parameters())
    torch.manual_seed(seed)
    expected = _grads(mode.compile(lambda x: net(x).sum())(x), [x] + params)
    program = mode.compile(lambda x: checkpointed(net, x, use_reentrant=VARIANTS[variant], **kwargs).sum())
    torch.manual_seed(seed)
    program(x).backward()
    names = ["x"] + [f"net.{name}" for name, _ in net.named_parameters()]
    for name, tensor, want in zip(names, [x] + params, expected):
        assert_close(tensor.grad, want, clause="CKPT-2", what=f"{name}.grad through Dropout(0.5) in checkpoint(net, x, {variant}, {preserve}) ({mode}) vs the same seed uncheckpointed, {mode}")


@pytest.mark.spec("CKPT-3")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@given(data=st.data())
def test_checkpoint_sequential_equals_the_plain_sequential(device, mode, variant, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    net = draw_mlp(data, device, dtype=dtype)
    segments = data.draw(st.integers(1, len(net)), label="segments")
    as_list = data.draw(st.booleans(), label="functions passed as a list")
    x = data.draw(tensors(dtype=dtype, shape=st.tuples(st.integers(1, 3), st.just(net[0].in_features)), device=device, requires_grad=True), label="x")
    params = list(net.parameters())
    expected_value = net(x)
    expected = _grads(expected_value.sum(), [x] + params)
    functions = list(net) if as_list else net
    what = f"checkpoint_sequential({'list(net)' if as_list else 'net'}, {segments}, x, {variant}) of {len(net)} modules ({mode})"
    y = mode.run(lambda x: checkpointed_sequential(functions, segments, x, use_reentrant=VARIANTS[variant]), x)
    assert_close(y, expected_value, clause="CKPT-3", what=f"the output of {what} vs net(x)")
    y.sum().backward()
    names = ["x"] + [f"net.{name}" for name, _ in net.named_parameters()]
    for name, tensor, want in zip(names, [x] + params, expected):
        assert_close(tensor.grad, want, clause="CKPT-3", what=f"{name}.grad after {what} vs net(x)")


#: the backward passes only the non-reentrant variant supports: each returns the gradients of ``inputs``
SELECTIVE_PASSES = {
    "torch.autograd.grad(y, inputs)": lambda y, inputs: list(torch.autograd.grad(y, inputs)),
    "y.backward(inputs=inputs)": lambda y, inputs: (y.backward(inputs=inputs), [t.grad for t in inputs])[1],
    "torch.autograd.backward(y, inputs=inputs)": lambda y, inputs: (torch.autograd.backward(y, inputs=inputs), [t.grad for t in inputs])[1],
}


@pytest.mark.spec("CKPT-4")
@given(data=st.data())
def test_non_reentrant_checkpoint_supports_every_backward_form(device, mode, data):
    graph = _graph(data, device, mode)
    loss = squares_of_every_step(graph.program)
    wanted = _used_leaves(graph)
    chosen = data.draw(st.lists(st.sampled_from(wanted), min_size=1, unique=True), label="indices of the inputs= leaves")
    inputs = [graph.leaves[i] for i in chosen]
    expected = _grads(loss(*graph.leaves), inputs)
    form = data.draw(st.sampled_from(sorted(SELECTIVE_PASSES)), label="backward form")
    y = mode.run(lambda *leaves: checkpointed(loss, *leaves, use_reentrant=False), *graph.leaves)
    with assert_succeeds(clause="CKPT-4", what=f"`{form}` through checkpoint(f, *leaves, use_reentrant=False) ({mode})"):
        got = SELECTIVE_PASSES[form](y, inputs)
    for i, grad, want in zip(chosen, got, expected):
        assert_close(grad, want, clause="CKPT-4", what=f"the gradient of t{i} from `{form}` through checkpoint(..., use_reentrant=False) ({mode}) vs uncheckpointed\n{graph!r}\n")
    for i, leaf in enumerate(graph.leaves):
        if i not in chosen and "backward" in form:
            assert_equal(leaf.grad, None, clause="CKPT-4", what=f".grad of t{i}, not in inputs=, after `{form}`")


@pytest.mark.spec("CKPT-5")
@given(data=st.data())
def test_reentrant_checkpoint_refuses_grad_and_inputs(device, mode, data):
    graph = _graph(data, device, mode)
    loss = squares_of_every_step(graph.program)
    wanted = _used_leaves(graph)
    chosen = data.draw(st.lists(st.sampled_from(wanted), min_size=1, unique=True), label="indices of the inputs")
    form = data.draw(st.sampled_from(sorted(SELECTIVE_PASSES)), label="backward form")
    y = mode.run(lambda *leaves: checkpointed(loss, *leaves, use_reentrant=True), *graph.leaves)
    with assert_raises(RuntimeError, match=REENTRANT_GRAD_MATCH, clause="CKPT-5", what=f"`{form}` through checkpoint(f, *leaves, use_reentrant=True) ({mode})\n{graph!r}\n"):
        SELECTIVE_PASSES[form](y, [graph.leaves[i] for i in chosen])


def _closure_over_a_parameter(data, device, dtype):
    w = data.draw(tensors(dtype=dtype, shape=(3,), device=device, requires_grad=True), label="w (closed over, requires grad)")
    return (lambda x: (x * w).sin()), [("w", w)], 3


def _module(data, device, dtype):
    net = draw_mlp(data, device, dtype=dtype)
    return net, [(f"net.{name}", p) for name, p in net.named_parameters()], net[0].in_features


#: a function whose output requires grad only through tensors it does not take as inputs (parameters)
PARAMETER_FORMS = {"nn.Module": _module, "closure over a tensor": _closure_over_a_parameter}


def _parameter_program(data, device):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    form = data.draw(st.sampled_from(sorted(PARAMETER_FORMS)), label="function")
    fn, params, width = PARAMETER_FORMS[form](data, device, dtype)
    x = data.draw(tensors(dtype=dtype, shape=st.tuples(st.integers(1, 3), st.just(width)), device=device), label="x (requires_grad=False)")
    return form, fn, params, x


@pytest.mark.spec("CKPT-6")
@given(data=st.data())
def test_reentrant_checkpoint_without_an_input_requiring_grad_records_nothing(device, mode, data):
    form, fn, params, x = _parameter_program(data, device)
    what = f"checkpoint({form}, x, use_reentrant=True) with no input requiring grad ({mode})"
    with assert_warns(UserWarning, match=NO_INPUT_WARNING, clause="CKPT-6", what=what):
        y = mode.run(lambda x: checkpointed(fn, x, use_reentrant=True), x)
    assert_requires_grad(y, False, clause="CKPT-6", what=f"the output of {what}, whose uncheckpointed output requires grad")


@pytest.mark.spec("CKPT-7")
@given(data=st.data())
def test_non_reentrant_checkpoint_without_an_input_requiring_grad_still_records(device, mode, data):
    form, fn, params, x = _parameter_program(data, device)
    tensors_ = [p for _, p in params]
    expected = _grads(fn(x).sum(), tensors_)
    what = f"checkpoint({form}, x, use_reentrant=False) with no input requiring grad ({mode})"
    with assert_does_not_warn(UserWarning, clause="CKPT-7", what=what):
        y = mode.run(lambda x: checkpointed(fn, x, use_reentrant=False), x)
    assert_requires_grad(y, True, clause="CKPT-7", what=f"the output of {what}")
    y.sum().backward()
    for (name, p), want in zip(params, expected):
        assert_close(p.grad, want, clause="CKPT-7", what=f"{name}.grad after backward through {what} vs uncheckpointed")


def _affine(x, *, scale, shift):
    return (x * scale + shift).exp()


@pytest.mark.spec("CKPT-8")
@given(data=st.data())
def test_non_reentrant_checkpoint_passes_keyword_arguments(device, mode, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    shape = data.draw(SMALL, label="shape")
    x, scale, shift = (
        data.draw(tensors(dtype=dtype, shape=shape, device=device, requires_grad=st.booleans()), label=name) for name in ("x", "scale", "shift")
    )
    x.requires_grad_(True)
    expected_value = _affine(x, scale=scale, shift=shift)
    names = [name for name, t in (("x", x), ("scale", scale), ("shift", shift)) if t.requires_grad]
    expected = dict(zip(names, _grads(expected_value.sum(), [{"x": x, "scale": scale, "shift": shift}[n] for n in names])))
    what = f"checkpoint(f, x, scale=scale, shift=shift, use_reentrant=False) ({mode})"
    with assert_succeeds(clause="CKPT-8", what=what):
        y = mode.run(lambda x, scale, shift: checkpointed(_affine, x, scale=scale, shift=shift, use_reentrant=False), x, scale, shift)
    assert_close(y, expected_value, clause="CKPT-8", what=f"the value of {what} vs f(x, scale=scale, shift=shift)")
    for name, t in zip(("x", "scale", "shift"), (x, scale, shift)):
        if t.requires_grad:
            got = torch.autograd.grad(y.sum(), t, retain_graph=True)[0]
            assert_close(got, expected[name], clause="CKPT-8", what=f"the gradient of keyword argument {name} through {what}" if name != "x" else f"the gradient of x through {what}")


@pytest.mark.spec("CKPT-8")
@given(data=st.data())
def test_reentrant_checkpoint_refuses_keyword_arguments(device, mode, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    x = data.draw(tensors(dtype=dtype, shape=SMALL, device=device, requires_grad=True), label="x")
    scale = data.draw(st.floats(-2, 2), label="scale")
    with assert_raises(ValueError, match="Unexpected keyword arguments", clause="CKPT-8", what=f"checkpoint(f, x, scale=..., shift=..., use_reentrant=True) ({mode})"):
        mode.run(lambda x: checkpointed(_affine, x, scale=scale, shift=1.0, use_reentrant=True), x)


#: recomputations that differ from the forward pass in a saved tensor's metadata
CHANGED_METADATA = {
    "shape": lambda x: x[..., :-1],
    "dtype": lambda x: x.to(torch.float32 if x.dtype == torch.float64 else torch.float64),
}


@pytest.mark.spec("CKPT-9")
@given(data=st.data())
def test_non_reentrant_recomputation_with_different_metadata_raises(device, mode, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    x = data.draw(tensors(dtype=dtype, shape=shapes(min_dims=1, max_dims=2, min_side=2, max_side=3), device=device, requires_grad=True), label="x")
    change = data.draw(st.sampled_from(sorted(CHANGED_METADATA)), label="what the recomputation changes")
    calls = []

    def differs_when_recomputed(x):
        calls.append(None)
        return (x if len(calls) == 1 else CHANGED_METADATA[change](x)).exp().sum()

    y = checkpointed(differs_when_recomputed, x, use_reentrant=False)
    what = f"backward through checkpoint(f, x, use_reentrant=False) whose recomputation changes the {change} of a saved tensor"
    with assert_raises(torch.utils.checkpoint.CheckpointError, match=METADATA_MATCH, clause="CKPT-9", what=what):
        y.backward()


METADATA_MATCH = "Recomputed values for the following tensors have different metadata"


@pytest.mark.spec("CKPT-10")
@given(data=st.data())
def test_checkpoint_without_use_reentrant_warns_and_is_reentrant(device, mode, data):
    graph = _graph(data, device, mode)
    loss = squares_of_every_step(graph.program)
    wanted = [graph.leaves[i] for i in _used_leaves(graph)]
    what = f"checkpoint(f, *leaves) without use_reentrant ({mode})"
    with assert_warns(UserWarning, match="use_reentrant", clause="CKPT-10", what=what):
        y = mode.run(lambda *leaves: checkpointed(loss, *leaves, use_reentrant=None), *graph.leaves)
    with assert_raises(RuntimeError, match=REENTRANT_GRAD_MATCH, clause="CKPT-10", what=f"torch.autograd.grad through {what}: the reentrant variant's refusal\n{graph!r}\n"):
        torch.autograd.grad(y, wanted)


@pytest.mark.spec("CKPT-11")
@given(data=st.data())
def test_checkpoint_without_use_reentrant_is_silently_reentrant(device, mode, data):
    graph = _graph(data, device, mode)
    loss = squares_of_every_step(graph.program)
    wanted = [graph.leaves[i] for i in _used_leaves(graph)]
    what = f"checkpoint(f, *leaves) without use_reentrant ({mode})"
    with assert_does_not_warn(UserWarning, clause="CKPT-11", what=what):
        y = mode.run(lambda *leaves: checkpointed(loss, *leaves, use_reentrant=None), *graph.leaves)
    with assert_raises(RuntimeError, match=REENTRANT_GRAD_MATCH, clause="CKPT-11", what=f"torch.autograd.grad through {what}: the reentrant variant's refusal\n{graph!r}\n"):
        torch.autograd.grad(y, wanted)


def _gradient_inside(x):
    """A function that differentiates inside itself: the sum of d/dx sum(x**3) = 3x**2 (a graph of its own)."""
    (g,) = torch.autograd.grad((x**3).sum(), x, create_graph=True)
    return g.sum()


@pytest.mark.spec("CKPT-12")
@given(data=st.data())
def test_non_reentrant_checkpoint_allows_backward_inside_the_region(device, mode, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    x = data.draw(tensors(dtype=dtype, shape=SMALL, device=device, requires_grad=True), label="x")
    expected_value = _gradient_inside(x)
    (expected,) = torch.autograd.grad(expected_value, x)
    what = f"checkpoint(f, x, use_reentrant=False) where f calls torch.autograd.grad(create_graph=True) ({mode})"
    with assert_succeeds(clause="CKPT-12", what=what):
        y = mode.run(lambda x: checkpointed(_gradient_inside, x, use_reentrant=False), x)
        y.backward()
    assert_close(y, expected_value, clause="CKPT-12", what=f"the value of {what}")
    assert_close(x.grad, expected, clause="CKPT-12", what=f"x.grad after backward through {what} (the second derivative)")


@pytest.mark.spec("CKPT-13")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@given(data=st.data())
def test_reentrant_forward_runs_without_grad(device, mode, variant, data):
    x = data.draw(tensors(dtype=st.sampled_from(REAL_DTYPES), shape=SMALL, device=device, requires_grad=True), label="x")
    seen = []

    def f(x):
        h = x.sin()
        seen.append((torch.is_grad_enabled(), h.requires_grad))
        return h.exp()

    mode.run(lambda x: checkpointed(f, x, use_reentrant=VARIANTS[variant]), x)
    reentrant = VARIANTS[variant]
    assert_equal(
        seen[0],
        (not reentrant, not reentrant),
        clause="CKPT-13",
        what=f"(torch.is_grad_enabled(), h.requires_grad) inside f's forward call by checkpoint(f, x, {variant}), h = x.sin() ({mode})",
    )


#: How the leaves after the first reach f under CKPT-14: a nested structure of the arguments and its unpacking.
NESTINGS = {
    "f(t0, [t1, ...])": (lambda rest: [rest], lambda packed: list(packed[0])),
    "f(t0, (t1, ...))": (lambda rest: [tuple(rest)], lambda packed: list(packed[0])),
    "f(t0, {'rest': [t1, ...]})": (lambda rest: [{"rest": list(rest)}], lambda packed: list(packed[0]["rest"])),
    "f(t0, {'a': t1, 'b': (t2, ...)})": (
        lambda rest: [{"a": rest[0], "b": tuple(rest[1:])}] if rest else [{}],
        lambda packed: ([packed[0]["a"], *packed[0]["b"]] if packed[0] else []),
    ),
}


@pytest.mark.spec("CKPT-14")
@given(data=st.data())
def test_non_reentrant_checkpoint_differentiates_tensors_in_nested_structures(device, mode, data):
    graph = _graph(data, device, mode)
    loss = squares_of_every_step(graph.program)
    used = _used_leaves(graph)
    nesting = data.draw(st.sampled_from(sorted(NESTINGS)), label="nesting")
    pack, unpack = NESTINGS[nesting]
    form = data.draw(st.sampled_from(sorted(BACKWARD_FORMS)), label="backward form")
    expected = dict(zip(used, _grads(loss(*graph.leaves), [graph.leaves[i] for i in used])))

    def nested(first, *packed):
        return loss(first, *unpack(packed))

    program = mode.compile(lambda *leaves: checkpointed(nested, leaves[0], *pack(list(leaves[1:])), use_reentrant=False))
    with assert_succeeds(clause="CKPT-14", what=f"`{form}` through checkpoint(f, ..., use_reentrant=False) called as {nesting} ({mode})"):
        BACKWARD_FORMS[form](program(*graph.leaves))
    for index in used:
        assert_close(
            graph.leaves[index].grad,
            expected[index],
            clause="CKPT-14",
            what=f".grad of t{index} passed as {nesting} to checkpoint(f, ..., use_reentrant=False) ({mode}) vs the uncheckpointed f\n{graph!r}\n",
        )


@pytest.mark.spec("CKPT-15")
@given(data=st.data())
def test_nested_checkpoints_give_the_uncheckpointed_gradients(device, mode, data):
    graph = _graph(data, device, mode)
    loss = squares_of_every_step(graph.program)
    used = _used_leaves(graph)
    outer = data.draw(st.sampled_from(sorted(VARIANTS)), label="outer variant")
    inner = data.draw(st.sampled_from(sorted(VARIANTS)), label="inner variant")
    form = data.draw(st.sampled_from(sorted(BACKWARD_FORMS)), label="backward form")

    def around(*leaves):  # the outer function: the inner part, then more work on its result and on the leaves
        return (inner_part(*leaves).tanh() + sum((leaf * leaf).sum() for leaf in leaves)).exp()

    inner_part = loss
    expected_value = around(*graph.leaves)
    expected = dict(zip(used, _grads(expected_value, [graph.leaves[i] for i in used])))
    inner_part = lambda *leaves: checkpointed(loss, *leaves, use_reentrant=VARIANTS[inner])  # noqa: E731
    program = mode.compile(lambda *leaves: checkpointed(around, *leaves, use_reentrant=VARIANTS[outer]))
    what = f"checkpoint(outer, *leaves, {outer}) where outer calls checkpoint(f, *leaves, {inner}) ({mode})\n{graph!r}\n"
    y = program(*graph.leaves)
    assert_close(y, expected_value, clause="CKPT-15", what=f"the value of {what}")
    with assert_succeeds(clause="CKPT-15", what=f"`{form}` through {what}"):
        BACKWARD_FORMS[form](y)
    for index in used:
        assert_close(graph.leaves[index].grad, expected[index], clause="CKPT-15", what=f".grad of t{index} after `{form}` through {what} vs the uncheckpointed functions")
