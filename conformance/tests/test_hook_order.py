"""Backward hooks execution: whether a hook fires, in which order, special hooks, module hook options.
Spec: specs/hooks.md, HOOK-15..HOOK-23 (HOOK-1..14: conformance/tests/test_hooks.py)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, fail
from conformance.testlib.graphs import graphs
from conformance.testlib.hook_recorders import Recorder, depends_on, output_nr_replaced, run_program
from conformance.testlib.modes import Mode
from conformance.testlib.ops import OPS
from conformance.testlib.strategies import REAL_DTYPES, shapes, tensors

#: factors hooks multiply gradients by: exact in floating point, never 1, so a dropped or repeated one shows
FACTORS = (2.0, -0.5, 4.0, -1.0)


def _new_program(mode: Mode) -> None:
    """Each hypothesis example is a new program: in a compiled mode clear dynamo's caches."""
    if mode.compiled:
        torch._dynamo.reset()


def _graph(data, device, mode, **kwargs):
    return data.draw(
        graphs(device=device, dtype=st.sampled_from(REAL_DTYPES), requires_grad=True, computes=True, mode=mode, max_steps=4, **kwargs),
        label="graph",
    )


def _loss_weights(data, out: torch.Tensor) -> torch.Tensor:
    return data.draw(tensors(dtype=out.dtype, shape=tuple(out.shape), device=out.device, low=0.5, high=2.0), label="loss weights")


def _at(recorder: Recorder, index, kind: str) -> int:
    return next(position for position, event in enumerate(recorder.events) if event.index == index and event.kind == kind)


# ----------------------------------------------------------------------------- HOOK-15


@pytest.mark.spec("HOOK-15")
@given(data=st.data())
def test_tensor_hooks_then_retain_grad_then_node_prehooks_then_node_hooks(device, mode, data):
    _new_program(mode)
    graph = _graph(data, device, mode)
    values, hooked = run_program(graph, mode)
    retain_first = data.draw(st.booleans(), label="retain_grad() called before the hooks are registered")
    factors = {i: (data.draw(st.sampled_from(FACTORS), label=f"tensor hook factor t{i}"), data.draw(st.sampled_from(FACTORS), label=f"pre-hook factor t{i}")) for i in hooked}
    recorder = Recorder()
    for i in hooked:
        t, node, (a, b) = values[i], values[i].grad_fn, factors[i]
        nr = t.output_nr
        if retain_first:
            t.retain_grad()
        t.register_hook(lambda grad, i=i, t=t, a=a: (recorder.add("tensor", i, grad=grad, dot_grad=t.grad), grad * a)[1])
        node.register_prehook(lambda go, i=i, t=t, b=b, nr=nr: (recorder.add("pre", i, go=go[nr], dot_grad=t.grad), output_nr_replaced(go, nr, b))[1])
        node.register_hook(lambda gi, go, i=i, t=t, nr=nr: recorder.add("post", i, go=go[nr], dot_grad=t.grad))
        if not retain_first:
            t.retain_grad()
    (values[-1] * _loss_weights(data, values[-1])).sum().backward()
    for i in hooked:
        what = f"t{i} = {graph.source(i - len(graph.leaves)) if not mode.compiled else 'the compiled program'} ({mode}); {recorder!r}\n{graph!r}"
        kinds = recorder.kinds(i)
        if i == len(values) - 1 or kinds:
            assert_equal(kinds, ["tensor", "pre", "post"], clause="HOOK-15", what=f"hooks called, in order, for {what}")
        else:
            continue
        a, b = factors[i]
        tensor, pre, post = (recorder.events[_at(recorder, i, kind)].seen for kind in ("tensor", "pre", "post"))
        if tensor["dot_grad"] is not None:
            fail("HOOK-15", f"when the tensor hook of {what} ran, .grad should still be None (retain_grad updates it after the tensor hooks), but it was {tensor['dot_grad']}")
        hooked_grad = tensor["grad"] * a
        assert_close(pre["dot_grad"], hooked_grad, clause="HOOK-15", what=f".grad seen by the grad_fn pre-hook of {what}: the gradient as the tensor hook returned it")
        assert_close(pre["go"], hooked_grad, clause="HOOK-15", what=f"grad_outputs entry seen by the grad_fn pre-hook of {what}: the tensor hook's result")
        assert_close(post["go"], hooked_grad * b, clause="HOOK-15", what=f"grad_outputs entry seen by the grad_fn post-hook of {what}: the pre-hook's result")
        assert_close(values[i].grad, hooked_grad, clause="HOOK-15", what=f".grad after backward of {what}: the tensor hook's result, not the pre-hook's")


# ----------------------------------------------------------------------------- HOOK-16


@pytest.mark.spec("HOOK-16")
@given(data=st.data())
def test_post_accumulate_grad_hook_runs_once_after_grad_is_accumulated(device, mode, data):
    _new_program(mode)
    graph = _graph(data, device, mode)
    leaves = graph.leaves
    prior = {}
    for i, leaf in enumerate(leaves):
        if data.draw(st.booleans(), label=f"t{i} has a .grad from an earlier pass"):
            prior[i] = data.draw(tensors(dtype=leaf.dtype, shape=tuple(leaf.shape), device=leaf.device), label=f"earlier .grad of t{i}")
            leaf.grad = prior[i].clone()
    factors = {i: data.draw(st.sampled_from(FACTORS), label=f"tensor hook factor t{i}") for i in range(len(leaves))}
    recorder = Recorder()
    for i, leaf in enumerate(leaves):
        leaf.register_hook(lambda grad, i=i: (recorder.add("tensor", i, grad=grad), grad * factors[i])[1])
        leaf.register_post_accumulate_grad_hook(
            lambda p, i=i, leaf=leaf: recorder.add("post-accumulate", i, same=p is leaf, dot_grad=p.grad, grad_mode=torch.is_grad_enabled())
        )
    values, _ = run_program(graph, mode)
    (values[-1] * _loss_weights(data, values[-1])).sum().backward()
    for i, leaf in enumerate(leaves):
        what = f"leaf t{i} ({mode}); {recorder!r}\n{graph!r}"
        if not depends_on(values[-1], leaf):
            assert_equal(recorder.kinds(i), [], clause="HOOK-16", what=f"hooks called on {what}, which the output does not depend on")
            continue
        assert_equal(recorder.kinds(i), ["tensor", "post-accumulate"], clause="HOOK-16", what=f"hooks called, in order, on {what}")
        tensor, post = (recorder.events[_at(recorder, i, kind)].seen for kind in ("tensor", "post-accumulate"))
        assert_equal(post["same"], True, clause="HOOK-16", what=f"`p is leaf` for the argument of the post-accumulate-grad hook of {what}")
        assert_equal(post["grad_mode"], False, clause="HOOK-16", what=f"torch.is_grad_enabled() inside the post-accumulate-grad hook of {what}")
        expected = tensor["grad"] * factors[i] + (prior[i] if i in prior else 0)
        assert_close(post["dot_grad"], expected, clause="HOOK-16", what=f".grad seen by the post-accumulate-grad hook of {what}: earlier .grad plus the hooked gradient")


@pytest.mark.spec("HOOK-16")
@given(data=st.data())
def test_post_accumulate_grad_hook_on_a_non_leaf_raises(device, mode, data):
    _new_program(mode)
    graph = _graph(data, device, mode)
    values, hooked = run_program(graph, mode)
    index = data.draw(st.sampled_from(hooked), label="index of the non-leaf")
    with assert_raises(RuntimeError, match="non-leaf", clause="HOOK-16", what=f"register_post_accumulate_grad_hook on the non-leaf t{index} ({mode})\n{graph!r}"):
        values[index].register_post_accumulate_grad_hook(lambda p: None)


# ----------------------------------------------------------------------------- HOOK-17


@pytest.mark.spec("HOOK-17")
@pytest.mark.parametrize("call", ["torch.autograd.grad(loss, [t])", "loss.backward(inputs=[t])"])
@given(data=st.data())
def test_with_inputs_only_hooks_on_the_way_to_them_fire(device, mode, call, data):
    _new_program(mode)
    graph = _graph(data, device, mode)
    values, hooked = run_program(graph, mode)
    target = data.draw(st.sampled_from([i for i in hooked if depends_on(values[-1], values[i])]), label="index of the input t (the output depends on it)")
    recorder = Recorder()
    watched = list(range(len(graph.leaves))) + hooked
    for i in watched:
        values[i].register_hook(lambda grad, i=i: recorder.add("tensor", i, grad=grad))
    t = values[target]
    t.grad_fn.register_prehook(lambda go: recorder.add("pre", "t.grad_fn"))
    t.grad_fn.register_hook(lambda gi, go: recorder.add("post", "t.grad_fn"))
    out = values[-1]
    loss = (out * _loss_weights(data, out)).sum()
    if call.startswith("torch.autograd.grad"):
        torch.autograd.grad(loss, [t])
        what = f"{call} with t = t{target} ({mode}); {recorder!r}\n{graph!r}"
        assert_equal(recorder.kinds("t.grad_fn"), [], clause="HOOK-17", what=f"pre-hooks and hooks of t.grad_fn called during {what}")
    else:
        loss.backward(inputs=[t])
    what = f"{call} with t = t{target} ({mode}); {recorder!r}\n{graph!r}"
    for i in watched:
        on_the_way = depends_on(out, values[i]) and depends_on(values[i], t)
        assert_equal(len(recorder.of(i, "tensor")), int(on_the_way), clause="HOOK-17", what=f"calls of the tensor hook on t{i} ({'on' if on_the_way else 'not on'} a path from the output to t) during {what}")


# ----------------------------------------------------------------------------- HOOK-18

IN_PLACE = {"t.mul_(c)": (lambda t, c: t.mul_(c), lambda w, c: w * c), "t.div_(c)": (lambda t, c: t.div_(c), lambda w, c: w / c)}
ELEMENTWISE_FORMS = [form for op in OPS if op.kind == "elementwise" and op.arity == 1 and op.name not in ("neg",) for form in op.forms]


@pytest.mark.spec("HOOK-18")
@pytest.mark.parametrize("in_place", sorted(IN_PLACE))
@given(data=st.data())
def test_tensor_hooks_registered_before_an_in_place_change_see_the_old_value(device, mode, in_place, data):
    _new_program(mode)
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    shape = data.draw(shapes(min_dims=1, min_side=1, max_side=3), label="shape")
    x = data.draw(tensors(dtype=dtype, shape=shape, device=device, requires_grad=True, low=0.2, high=1.0), label="x")
    form = data.draw(st.sampled_from(ELEMENTWISE_FORMS).filter(lambda f: f(x.detach()).shape == x.shape), label="op computing t from x")
    magnitude = data.draw(tensors(dtype=dtype, shape=shape, device=device, low=1.5, high=3.0), label="|c|")
    c = magnitude * (-1) ** data.draw(st.integers(0, 1), label="sign of c")
    change, chain = IN_PLACE[in_place]
    t = mode.run(lambda x: form(x) * 1, x)  # a new tensor even where the form returns its operand
    received = {"before": [], "after": []}
    t.register_hook(lambda grad: received["before"].append(grad.clone()))
    t = mode.run(change, t, c)
    t.register_hook(lambda grad: received["after"].append(grad.clone()))
    w = _loss_weights(data, t)
    (t * w).sum().backward()
    what = f"t = {form.source('x')} * 1; a hook; {in_place}; a hook; (t * w).sum().backward() ({mode})"
    assert_equal(len(received["after"]), 1, clause="HOOK-18", what=f"calls of the hook registered after the in-place change: {what}")
    assert_equal(len(received["before"]), 1, clause="HOOK-18", what=f"calls of the hook registered before the in-place change: {what}")
    assert_close(received["after"][0], w, clause="HOOK-18", what=f"gradient received by the hook registered after the change (w.r.t. the new value): {what}")
    assert_close(received["before"][0], chain(w, c), clause="HOOK-18", what=f"gradient received by the hook registered before the change (w.r.t. the value before it): {what}")


# ----------------------------------------------------------------------------- HOOK-19 / HOOK-20


def _multi_hook_setup(data, device, mode):
    """A program, the tensors a multi-grad hook goes on (its output, a leaf it depends on, maybe more) and a
    recorder hook on each of them registered before the multi-grad hook."""
    graph = _graph(data, device, mode, unrelated_leaf=data.draw(st.booleans(), label="with a leaf the output is not computed from"), max_leaves=3)
    values, hooked = run_program(graph, mode)
    out = len(values) - 1
    related = [i for i in range(len(graph.leaves)) if depends_on(values[out], values[i])]
    others = [i for i in list(range(len(graph.leaves))) + hooked if i not in (out, related[0])]
    chosen = [out, related[0]] + data.draw(st.lists(st.sampled_from(others), unique=True, max_size=2) if others else st.just([]), label="other tensors")
    chosen = data.draw(st.permutations(chosen), label="tensors, in the order passed")
    recorder = Recorder()
    for i in chosen:
        values[i].register_hook(lambda grad, i=i: recorder.add("tensor", i, grad=grad))
    return graph, values, chosen, recorder


@pytest.mark.spec("HOOK-19")
@given(data=st.data())
def test_multi_grad_hook_all_runs_once_after_the_last_gradient(device, mode, data):
    _new_program(mode)
    graph, values, chosen, recorder = _multi_hook_setup(data, device, mode)
    torch.autograd.graph.register_multi_grad_hook([values[i] for i in chosen], lambda grads: recorder.add("multi", "multi", grads=tuple(grads)))
    (values[-1] * _loss_weights(data, values[-1])).sum().backward()
    what = f"register_multi_grad_hook([{', '.join(f't{i}' for i in chosen)}], fn) ({mode}); {recorder!r}\n{graph!r}"
    calls = recorder.of("multi")
    assert_equal(len(calls), 1, clause="HOOK-19", what=f"calls of fn after {what}")
    position, event = calls[0]
    grads = event.seen["grads"]
    assert_equal(len(grads), len(chosen), clause="HOOK-19", what=f"number of gradients fn receives for {what}")
    for k, i in enumerate(chosen):
        own = recorder.of(i, "tensor")
        if not own:
            if grads[k] is not None:
                fail("HOOK-19", f"entry {k} (t{i}, whose gradient is not computed) of what fn receives should be None, but it is {grads[k]}: {what}")
            continue
        if own[0][0] > position:
            fail("HOOK-19", f"fn should run after the gradient of every tensor is computed, but t{i}'s own hook ran after it: {what}")
        assert_close(grads[k], own[0][1].seen["grad"], clause="HOOK-19", what=f"entry {k} of what fn receives vs the gradient t{i}'s own hook received: {what}")


@pytest.mark.spec("HOOK-20")
@given(data=st.data())
def test_multi_grad_hook_any_runs_once_with_the_first_gradient(device, mode, data):
    _new_program(mode)
    graph, values, chosen, recorder = _multi_hook_setup(data, device, mode)
    torch.autograd.graph.register_multi_grad_hook([values[i] for i in chosen], lambda grad: recorder.add("multi", "multi", grad=grad), mode="any")
    (values[-1] * _loss_weights(data, values[-1])).sum().backward()
    what = f"register_multi_grad_hook([{', '.join(f't{i}' for i in chosen)}], fn, mode='any') ({mode}); {recorder!r}\n{graph!r}"
    calls = recorder.of("multi")
    assert_equal(len(calls), 1, clause="HOOK-20", what=f"calls of fn after {what}")
    position, event = calls[0]
    first = next(e for e in recorder.events if e.kind == "tensor")
    assert_equal(recorder.events[position - 1] is first, True, clause="HOOK-20", what=f"fn running right after the first of the tensors gets its gradient (t{first.index}), before any other: {what}")
    assert_close(event.seen["grad"], first.seen["grad"], clause="HOOK-20", what=f"the gradient fn receives vs that of t{first.index}, the first computed: {what}")


# ----------------------------------------------------------------------------- HOOK-21


class _Affine(nn.Module):
    """A user-defined module: one parameter, one or two outputs."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(-1.0, 1.0, 3, dtype=torch.float64))
        self.outputs = outputs

    def forward(self, a):
        y = torch.tanh(a * self.weight)
        return (y, a * a) if self.outputs == 2 else y


@pytest.mark.spec("HOOK-21")
@pytest.mark.parametrize("outputs", [1, 2])
@given(data=st.data())
def test_full_backward_pre_hook_sees_and_replaces_grad_output(device, mode, outputs, data):
    _new_program(mode)
    module = _Affine(outputs).to(device)
    a = data.draw(tensors(dtype=torch.float64, shape=(data.draw(st.integers(1, 3), label="batch"), 3), device=device, requires_grad=True), label="a")
    factors = [data.draw(st.sampled_from(FACTORS), label=f"pre-hook factor of output {k}") for k in range(outputs)]
    replaces = data.draw(st.booleans(), label="the pre-hook returns new gradients")
    recorder = Recorder()

    def pre_hook(mod, grad_output):
        recorder.add("pre", "module", grad_output=tuple(grad_output))
        return tuple(g * f for g, f in zip(grad_output, factors)) if replaces else None

    module.register_full_backward_pre_hook(pre_hook)
    module.register_full_backward_hook(lambda mod, gi, go: recorder.add("full", "module", grad_output=tuple(go), grad_input=tuple(gi)))
    result = mode.module(module)(a)
    result = result if isinstance(result, tuple) else (result,)
    weights = [data.draw(tensors(dtype=torch.float64, shape=tuple(r.shape), device=device, low=0.5, high=2.0), label=f"loss weight {k}") for k, r in enumerate(result)]
    sum((r * w).sum() for r, w in zip(result, weights)).backward()
    what = f"_Affine(outputs={outputs}) with a full backward pre-hook{' returning scaled gradients' if replaces else ' returning None'} ({mode}); {recorder!r}"
    assert_equal(recorder.kinds("module"), ["pre", "full"], clause="HOOK-21", what=f"module backward hooks called, in order, for {what}")
    pre, full = (e.seen for e in recorder.events)
    for k in range(outputs):
        assert_close(pre["grad_output"][k], weights[k], clause="HOOK-21", what=f"grad_output[{k}] seen by the pre-hook of {what}")
    used = [w * f for w, f in zip(weights, factors)] if replaces else weights
    for k in range(outputs):
        assert_close(full["grad_output"][k], used[k], clause="HOOK-21", what=f"grad_output[{k}] seen by the full backward hook of {what}")
    reference = _Affine(outputs).to(device)
    ref_a = a.detach().clone().requires_grad_(True)
    ref_out = reference(ref_a)
    expected = torch.autograd.grad(ref_out if isinstance(ref_out, tuple) else (ref_out,), [ref_a], grad_outputs=used)[0]
    assert_close(a.grad, expected, clause="HOOK-21", what=f"a.grad (computed from the grad_output the pre-hook left) for {what}")


# ----------------------------------------------------------------------------- HOOK-22


class _Scaled(nn.Module):
    """A user-defined module taking a keyword argument."""

    def forward(self, a, scale=1.0):
        return torch.sin(a) * scale


@pytest.mark.spec("HOOK-22")
@given(data=st.data())
def test_forward_hooks_with_kwargs_and_prepend(device, mode, data):
    _new_program(mode)
    module = _Scaled()
    a = data.draw(tensors(dtype=torch.float64, shape=shapes(min_dims=1, min_side=1, max_side=3), device=device), label="a")
    scale, new_scale = (data.draw(st.sampled_from([2.0, -3.0, 0.5]), label=name) for name in ("scale passed", "scale the pre-hook sets"))
    prepends = data.draw(st.lists(st.booleans(), min_size=2, max_size=4), label="prepend=, per forward hook in registration order")
    order: list = []
    seen: dict = {}

    def pre_hook(mod, args, kwargs):
        order.append("pre")
        seen["pre"] = dict(kwargs)
        return args, {**kwargs, "scale": new_scale}

    module.register_forward_pre_hook(pre_hook, with_kwargs=True)
    for k, prepend in enumerate(prepends):
        module.register_forward_hook(lambda mod, args, kwargs, output, k=k: (order.append(k), seen.setdefault(k, (dict(kwargs), output.detach().clone())))[0], with_kwargs=True, prepend=prepend)
    result = mode.run(lambda a: module(a, scale=scale), a)
    what = f"_Scaled()(a, scale={scale}) with a with_kwargs pre-hook setting scale={new_scale} and forward hooks registered with prepend={prepends} ({mode})"
    expected_order = ["pre"] + [k for k in reversed(range(len(prepends))) if prepends[k]] + [k for k in range(len(prepends)) if not prepends[k]]
    assert_equal(order, expected_order, clause="HOOK-22", what=f"hooks called, in order, for {what}")
    assert_equal(seen["pre"], {"scale": scale}, clause="HOOK-22", what=f"kwargs the with_kwargs pre-hook receives for {what}")
    assert_close(result, torch.sin(a) * new_scale, clause="HOOK-22", what=f"output (forward called with the pre-hook's kwargs) for {what}")
    for k in range(len(prepends)):
        assert_equal(seen[k][0], {"scale": new_scale}, clause="HOOK-22", what=f"kwargs forward hook {k} receives for {what}")
        assert_close(seen[k][1], result, clause="HOOK-22", what=f"output forward hook {k} receives for {what}")


# ----------------------------------------------------------------------------- HOOK-23


class _MayRaise(nn.Module):
    """A user-defined module whose forward raises ValueError when told to."""

    def __init__(self, raises: bool) -> None:
        super().__init__()
        self.raises = raises

    def forward(self, a):
        if self.raises:
            raise ValueError("forward failed")
        return torch.cos(a)


@pytest.mark.spec("HOOK-23")
@pytest.mark.parametrize("raises", [True, False], ids=["forward raises", "forward returns"])
@given(data=st.data())
def test_forward_hook_with_always_call_runs_when_forward_raises(device, mode, raises, data):
    _new_program(mode)
    module = _MayRaise(raises)
    a = data.draw(tensors(dtype=torch.float64, shape=shapes(min_dims=1, min_side=1, max_side=3), device=device), label="a")
    flags = data.draw(st.lists(st.booleans(), min_size=2, max_size=4), label="always_call=, per forward hook (before the two fixed ones)")
    always = data.draw(st.integers(0, len(flags) - 1), label="a hook with always_call=True")
    plain = data.draw(st.sampled_from([k for k in range(len(flags)) if k != always]), label="a hook without always_call")
    flags[always], flags[plain] = True, False  # both kinds, so dropping either hook or calling both shows
    called: list = []
    for k, always in enumerate(flags):
        module.register_forward_hook(lambda mod, args, output, k=k: called.append(k), always_call=always)
    program = lambda a: module(a)  # noqa: E731 - the user program
    what = f"a module whose forward {'raises' if raises else 'returns'}, with forward hooks registered with always_call={flags} ({mode})"
    if raises:
        with assert_raises(ValueError, match="forward failed", clause="HOOK-23", what=f"calling {what}"):
            mode.run(program, a)
        expected = [k for k, always in enumerate(flags) if always]
    else:
        mode.run(program, a)
        expected = list(range(len(flags)))
    assert_equal(called, expected, clause="HOOK-23", what=f"forward hooks called, in order, for {what}")
