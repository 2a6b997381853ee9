"""The functional API (torch.autograd.functional) and torch.func agree with torch.autograd.  Spec: specs/functional.md.

Every derivative is compared with the one ``torch.autograd.grad`` gives row by row, eagerly, on the same program
(conformance/testlib/functional_forms.py).  In a compiled mode the user program goes through the mode: the
function the functional API differentiates is compiled (``jacobian(mode.compile(f), x)``: the functional API
itself calls ``torch.autograd.grad``, where dynamo breaks the graph), and the torch.func transforms are compiled
with the function they transform (``mode.compile(lambda x: torch.func.grad(f)(x))``).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.autograd.functional as AF
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_requires_grad, assert_succeeds, fail
from conformance.testlib.functional_forms import (
    contract,
    draw_output_of,
    fresh,
    functional_graphs,
    hessian_rows,
    jacobian_rows,
    output_of,
    scalar_of,
)
from conformance.testlib.networks import draw_mlp
from conformance.testlib.ops import ops_by_name
from conformance.testlib.strategies import tensors, vacuous

#: the (vectorize, strategy) pairs jacobian documents (forward-mode needs vectorize=True)
JACOBIAN_STRATEGIES = [(False, "reverse-mode"), (True, "reverse-mode"), (True, "forward-mode")]


def _like(data, tensor: torch.Tensor, label: str) -> torch.Tensor:
    return data.draw(tensors(dtype=tensor.dtype, shape=tuple(tensor.shape), device=tensor.device), label=label)


def _as_inputs(data, leaves):
    """The functional API's ``inputs``: a tuple, or the tensor itself when there is one (both documented)."""
    if len(leaves) == 1 and data.draw(st.booleans(), label="pass the single input as a tensor (not a 1-tuple)"):
        return leaves[0], lambda result: (result,)
    return tuple(leaves), tuple


def _nonzero(tensors) -> bool:
    return any(bool(t.ne(0).any()) for t in tensors)


# --- torch.autograd.functional ------------------------------------------------------------------------------


@pytest.mark.spec("FUNCTIONAL-1")
@given(data=st.data())
def test_jacobian_agrees_with_autograd_grad(device, mode, data):
    graph = data.draw(functional_graphs(device, mode), label="graph")
    vectorize, strategy = data.draw(st.sampled_from(JACOBIAN_STRATEGIES), label="(vectorize, strategy)")
    function = draw_output_of(data, graph)
    expected = jacobian_rows(function, graph.leaves)
    inputs, as_tuple = _as_inputs(data, graph.leaves)
    program = mode.compile(function)
    result = as_tuple(AF.jacobian(program, inputs, vectorize=vectorize, strategy=strategy))
    for i, (actual, reference) in enumerate(zip(result, expected)):
        assert_close(actual, reference, clause="FUNCTIONAL-1", what=f"jacobian(vectorize={vectorize}, strategy={strategy!r}) w.r.t. t{i} ({mode}): the Jacobian autograd.grad gives row by row\n{graph!r}\n")


#: functions of one input with an output of no elements
EMPTY_OUTPUTS = {
    "x[..., :0]": lambda x: x[..., :0],
    "torch.narrow(x, -1, 0, 0).sin()": lambda x: torch.narrow(x, -1, 0, 0).sin(),
    "x.reshape(-1)[x.reshape(-1) > 10]": lambda x: x.reshape(-1)[x.reshape(-1) > 10],  # values in [-2, 2]
}


@pytest.mark.spec("FUNCTIONAL-1")
@pytest.mark.parametrize("vectorize, strategy", JACOBIAN_STRATEGIES, ids=["reverse-mode-loop", "reverse-mode-vectorized", "forward-mode"])
@given(data=st.data())
def test_jacobian_of_an_empty_output(device, mode, vectorize, strategy, data):
    """An output with no elements has a Jacobian with no elements, of shape output.shape + input.shape (what
    torch.func.jacrev returns); on torch 2.13 the reverse-mode strategies raise instead (expectations file)."""
    # boolean indexing has a data-dependent shape: dynamo breaks the graph there, so compiled modes draw the others
    sources = sorted(source for source in EMPTY_OUTPUTS if not (mode.compiled and ">" in source))
    source = data.draw(st.sampled_from(sources), label="function with an empty output")
    x = data.draw(tensors(dtype=st.sampled_from([torch.float32, torch.float64]), shape=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple), device=device), label="x")
    inputs, as_tuple = _as_inputs(data, [x])
    function = mode.compile(EMPTY_OUTPUTS[source])
    out_shape = EMPTY_OUTPUTS[source](x).shape
    what = f"jacobian(lambda x: {source}, x, vectorize={vectorize}, strategy={strategy!r}) with x of shape {tuple(x.shape)} ({mode})"
    with assert_succeeds(clause="FUNCTIONAL-1", what=what):
        (result,) = as_tuple(AF.jacobian(function, inputs, vectorize=vectorize, strategy=strategy))
    assert_equal(tuple(result.shape), tuple(out_shape) + tuple(x.shape), clause="FUNCTIONAL-1", what=f"the shape of {what}")


@pytest.mark.spec("FUNCTIONAL-2")
@pytest.mark.parametrize("product", ["vjp", "jvp"])
@given(data=st.data())
def test_vjp_and_jvp_agree_with_autograd_grad(device, mode, product, data):
    graph = data.draw(functional_graphs(device, mode), label="graph")
    function = draw_output_of(data, graph)
    out = function(*graph.leaves)
    jacobians = jacobian_rows(function, graph.leaves)
    inputs, as_tuple = _as_inputs(data, graph.leaves)
    program = mode.compile(function)
    if product == "vjp":
        v = _like(data, out, "v (like the output)")
        value, result = AF.vjp(program, inputs, v)
        expected = [contract(j, v, left=True) for j in jacobians]
    else:
        vs = [_like(data, leaf, f"v{i} (like t{i})") for i, leaf in enumerate(graph.leaves)]
        value, result = AF.jvp(program, inputs, vs[0] if not isinstance(inputs, tuple) else tuple(vs))
        expected = [sum(contract(j, v, left=False) for j, v in zip(jacobians, vs))]
        result = (result,)
    assert_close(value, out, clause="FUNCTIONAL-2", what=f"func_output returned by {product} ({mode}): func(inputs)")
    for i, (actual, reference) in enumerate(zip(as_tuple(result) if product == "vjp" else result, expected)):
        assert_close(actual, reference, clause="FUNCTIONAL-2", what=f"{product} result {i} ({mode}): the product with the Jacobian autograd.grad gives\n{graph!r}\n")


@pytest.mark.spec("FUNCTIONAL-3")
@pytest.mark.parametrize("api", ["hessian", "hvp", "vhp"])
@given(data=st.data())
def test_hessian_hvp_vhp_agree_with_second_order_autograd_grad(device, mode, api, data):
    graph = data.draw(functional_graphs(device, mode), label="graph")
    loss = scalar_of(graph)
    hessian = hessian_rows(loss, graph.leaves)
    inputs, as_tuple = _as_inputs(data, graph.leaves)
    program = mode.compile(loss)
    n = len(graph.leaves)
    if api == "hessian":
        result = AF.hessian(program, inputs)
        if not isinstance(inputs, tuple):
            result = ((result,),)
        pairs = [(result[i][j], hessian[i][j], f"H[{i}][{j}]") for i in range(n) for j in range(n)]
    else:
        vs = [_like(data, leaf, f"v{i} (like t{i})") for i, leaf in enumerate(graph.leaves)]
        value, result = getattr(AF, api)(program, inputs, vs[0] if not isinstance(inputs, tuple) else tuple(vs))
        assert_close(value, loss(*graph.leaves), clause="FUNCTIONAL-3", what=f"func_output returned by {api} ({mode})")
        if api == "hvp":
            expected = [sum(contract(hessian[i][j], vs[j], left=False) for j in range(n)) for i in range(n)]
        else:
            expected = [sum(contract(hessian[i][j], vs[i], left=True) for i in range(n)) for j in range(n)]
        pairs = [(r, e, f"{api} result {i}") for i, (r, e) in enumerate(zip(as_tuple(result), expected))]
    for actual, reference, what in pairs:
        assert_close(actual, reference, clause="FUNCTIONAL-3", what=f"{what} ({mode}): the second-order derivative autograd.grad gives\n{graph!r}\n")


#: nonlinear elementwise ops: the derivative depends on the input, so a differentiable result requires grad
CURVED = [ops_by_name()[name] for name in ("sin", "cos", "exp", "tanh", "sigmoid", "square")]


def _functional_api_call(api: str, fn, x: torch.Tensor, v: torch.Tensor, create_graph: bool):
    """The tensors the functional API ``api`` returns (func_output first where it returns one)."""
    if api == "jacobian":
        return (AF.jacobian(fn, x, create_graph=create_graph),)
    if api == "hessian":
        return (AF.hessian(lambda x: fn(x).sum(), x, create_graph=create_graph),)
    if api in ("vjp", "jvp"):
        return getattr(AF, api)(fn, x, v, create_graph=create_graph)
    return getattr(AF, api)(lambda x: fn(x).sum(), x, v, create_graph=create_graph)


@pytest.mark.spec("FUNCTIONAL-4")
@pytest.mark.parametrize("create_graph", [False, True])
@given(data=st.data())
def test_create_graph_decides_whether_results_are_differentiable(device, mode, create_graph, data):
    api = data.draw(st.sampled_from(["jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"]), label="functional API")
    op = data.draw(st.sampled_from(CURVED), label="op")
    form = data.draw(st.sampled_from(op.forms), label="form")
    x = data.draw(tensors(dtype=st.sampled_from([torch.float32, torch.float64]), shape=st.lists(st.integers(1, 3), max_size=2).map(tuple), device=device, requires_grad=True), label="x (requires grad)")
    v = _like(data, x, "v (like x)")
    fn = mode.compile(form.fn)
    results = _functional_api_call(api, fn, x, v, create_graph)
    for index, result in enumerate(results):
        assert_requires_grad(result, create_graph, clause="FUNCTIONAL-4", what=f"result {index} of {api}(..., create_graph={create_graph}) of {form.template} on an input that requires grad ({mode})")
    if create_graph:
        # differentiable: its gradient w.r.t. x is the derivative of the result, which autograd.grad gives
        (actual,) = torch.autograd.grad(results[-1].sum(), x)
        y = x.detach().requires_grad_(True)
        (reference,) = torch.autograd.grad(_functional_api_call(api, form.fn, y, v, True)[-1].sum(), y)
        assert_close(actual, reference, clause="FUNCTIONAL-4", what=f"gradient through {api}(..., create_graph=True) of {form.template} ({mode})")


# --- torch.func -----------------------------------------------------------------------------------------------


def _argnums(data, n: int):
    """A drawn argnums: an int or a tuple of ints (documented forms)."""
    if data.draw(st.booleans(), label="argnums as a tuple"):
        chosen = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True), label="argnums")
        return tuple(chosen), chosen
    index = data.draw(st.integers(0, n - 1), label="argnums")
    return index, [index]


@pytest.mark.spec("FUNCTIONAL-5")
@pytest.mark.parametrize("transform", ["grad", "grad_and_value"])
@given(data=st.data())
def test_func_grad_agrees_with_autograd_grad(device, mode, transform, data):
    graph = data.draw(functional_graphs(device, mode, max_leaves=3), label="graph")
    loss = scalar_of(graph)
    argnums, chosen = _argnums(data, len(graph.leaves))
    has_aux = data.draw(st.booleans(), label="has_aux")
    xs = fresh(graph.leaves)
    expected = torch.autograd.grad(loss(*xs), xs, allow_unused=True)
    expected = [torch.zeros_like(x) if g is None else g for g, x in zip(expected, xs)]
    if not _nonzero(expected[i] for i in chosen):
        vacuous("the gradient w.r.t. argnums is zero")

    def f(*leaves):
        value = loss(*leaves)
        return (value, leaves[0] * 2) if has_aux else value

    run = mode.compile(lambda *leaves: getattr(torch.func, transform)(f, argnums=argnums, has_aux=has_aux)(*leaves))
    result = run(*graph.leaves)
    what = f"torch.func.{transform}(f, argnums={argnums!r}, has_aux={has_aux}) ({mode})\n{graph!r}\n"
    if transform == "grad_and_value":
        result, value = result
        if has_aux:
            value, aux = value
            assert_close(aux, graph.leaves[0] * 2, clause="FUNCTIONAL-5", what=f"the aux output of {what}")
        assert_close(value, loss(*graph.leaves), clause="FUNCTIONAL-5", what=f"the value of {what}")
    elif has_aux:
        result, aux = result
        assert_close(aux, graph.leaves[0] * 2, clause="FUNCTIONAL-5", what=f"the aux output of {what}")
    grads = result if isinstance(argnums, tuple) else (result,)
    assert_equal(len(grads), len(chosen), clause="FUNCTIONAL-5", what=f"number of gradients from {what}")
    for g, i in zip(grads, chosen):
        assert_close(g, expected[i], clause="FUNCTIONAL-5", what=f"gradient w.r.t. t{i} from {what}: autograd.grad's")


@pytest.mark.spec("FUNCTIONAL-6")
@pytest.mark.parametrize("product", ["vjp", "jvp"])
@given(data=st.data())
def test_func_vjp_and_jvp_agree_with_autograd_grad(device, mode, product, data):
    graph = data.draw(functional_graphs(device, mode), label="graph")
    program = draw_output_of(data, graph)
    out = program(*graph.leaves)
    jacobians = jacobian_rows(program, graph.leaves)
    if product == "vjp":
        v = _like(data, out, "cotangent (like the output)")
        run = mode.compile(lambda *leaves: (lambda o, fn: (o, fn(v)))(*torch.func.vjp(program, *leaves)))
        value, result = run(*graph.leaves)
        expected = [contract(j, v, left=True) for j in jacobians]
    else:
        ts = tuple(_like(data, leaf, f"tangent {i} (like t{i})") for i, leaf in enumerate(graph.leaves))
        run = mode.compile(lambda *leaves: torch.func.jvp(program, tuple(leaves), ts))
        value, result = run(*graph.leaves)
        expected = [sum(contract(j, t, left=False) for j, t in zip(jacobians, ts))]
        result = (result,)
    assert_close(value, out, clause="FUNCTIONAL-6", what=f"the primal output of torch.func.{product} ({mode}): f(primals)")
    for i, (actual, reference) in enumerate(zip(result, expected)):
        assert_close(actual, reference, clause="FUNCTIONAL-6", what=f"torch.func.{product} result {i} ({mode}): the product with the Jacobian autograd.grad gives\n{graph!r}\n")


@pytest.mark.spec("FUNCTIONAL-7")
@pytest.mark.parametrize("transform", ["jacrev", "jacfwd", "hessian"])
@given(data=st.data())
def test_func_jacobians_and_hessian_agree_with_autograd_grad(device, mode, transform, data):
    graph = data.draw(functional_graphs(device, mode), label="graph")
    argnums, chosen = _argnums(data, len(graph.leaves))
    if transform == "hessian":
        fn = scalar_of(graph)
        rows = hessian_rows(fn, graph.leaves)
        expected = {(i, j): rows[i][j] for i in chosen for j in chosen}
    else:
        fn = draw_output_of(data, graph)
        rows = jacobian_rows(fn, graph.leaves)
        expected = {(i,): rows[i] for i in chosen}
    result = mode.run(lambda *leaves: getattr(torch.func, transform)(fn, argnums=argnums)(*leaves), *graph.leaves)
    for key, reference in expected.items():
        actual = result
        for position in key:  # a tuple argnums nests one level per differentiation
            actual = actual[chosen.index(position)] if isinstance(argnums, tuple) else actual
        assert_close(actual, reference, clause="FUNCTIONAL-7", what=f"torch.func.{transform}(f, argnums={argnums!r}) entry {key} ({mode}): autograd.grad's\n{graph!r}\n")


@pytest.mark.spec("FUNCTIONAL-8")
@given(data=st.data())
def test_vmap_equals_a_python_loop(device, mode, data):
    graph = data.draw(functional_graphs(device, mode, max_leaves=3), label="graph")
    size = data.draw(st.integers(2, 3), label="batch size")
    in_dims, batched = [], []
    for i, leaf in enumerate(graph.leaves):
        dim = data.draw(st.sampled_from([None] + list(range(leaf.dim() + 1))), label=f"in_dims of t{i}")
        if dim is None:
            batched.append(leaf)
        else:
            stacked = data.draw(tensors(dtype=leaf.dtype, shape=(size,) + tuple(leaf.shape), device=device), label=f"batch of t{i}")
            batched.append(stacked.movedim(0, dim))
        in_dims.append(dim)
    if all(d is None for d in in_dims):
        dim = data.draw(st.integers(0, graph.leaves[0].dim()), label="in_dims of t0 (one input is mapped)")
        batched[0] = data.draw(tensors(dtype=graph.leaves[0].dtype, shape=(size,) + tuple(graph.leaves[0].shape), device=device), label="batch of t0").movedim(0, dim)
        in_dims[0] = dim
    # an output no mapped input reaches is expanded along out_dims; torch gets that wrong for out_dims > 0
    # (pytorch#178425: the test below pins it), so such an output is drawn with out_dims=0 here
    output_index = len(graph.leaves) + len(graph.steps) - 1
    reaches_a_mapped_input = any(in_dims[i] is not None for i in graph.leaves_behind(output_index))
    out_dim = data.draw(st.integers(0, output_of(graph)(*graph.leaves).dim() if reaches_a_mapped_input else 0), label="out_dims")
    program = output_of(graph)
    expected = torch.stack(
        [program(*(x if d is None else x.select(d, b) for x, d in zip(batched, in_dims))) for b in range(size)], dim=out_dim
    )
    result = mode.run(lambda *xs: torch.func.vmap(program, in_dims=tuple(in_dims), out_dims=out_dim)(*xs), *batched)
    assert_close(result, expected, clause="FUNCTIONAL-8", what=f"vmap(f, in_dims={tuple(in_dims)}, out_dims={out_dim}) over {size} examples ({mode}): f on each, stacked\n{graph!r}\n")


@pytest.mark.spec("FUNCTIONAL-8")
@given(data=st.data())
def test_vmap_expands_an_output_no_mapped_input_reaches_along_out_dims(device, mode, data):
    """vmap(f, in_dims=(0, None), out_dims=d) of an f whose output depends only on the unmapped input: the output,
    the same for every example, stacked along d.  Torch puts the batch dimension last instead of at d, or raises
    (pytorch#178425: expectations file)."""
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple), label="shape of the unmapped input")
    size = data.draw(st.integers(2, 3), label="batch size")
    out_dim = data.draw(st.integers(1, len(shape)), label="out_dims")
    mapped = data.draw(tensors(dtype=torch.float64, shape=(size,), device=device), label="mapped input")
    unmapped = data.draw(tensors(dtype=torch.float64, shape=shape, device=device), label="unmapped input")
    expected = torch.stack([unmapped.neg() for _ in range(size)], dim=out_dim)
    what = f"vmap(lambda a, b: b.neg(), in_dims=(0, None), out_dims={out_dim}) over {size} examples, b of shape {shape} ({mode})"
    with assert_succeeds(clause="FUNCTIONAL-8", what=what):
        result = mode.run(lambda a, b: torch.func.vmap(lambda x, y: y.neg(), in_dims=(0, None), out_dims=out_dim)(a, b), mapped, unmapped)
    assert_close(result, expected, clause="FUNCTIONAL-8", what=f"{what}: the output stacked along out_dims")


@pytest.mark.spec("FUNCTIONAL-9")
@given(data=st.data())
def test_functional_call_uses_the_given_parameters_and_leaves_the_module_unchanged(device, mode, data):
    module = draw_mlp(data, device)
    width = module[0].in_features
    x = data.draw(tensors(dtype=torch.float64, shape=st.tuples(st.integers(1, 3), st.just(width)), device=device), label="input batch")
    names = [name for name, _ in module.named_parameters()]
    replaced = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True), label="parameters replaced")
    params = {name: _like(data, module.get_parameter(name), f"new {name}") for name in replaced}
    before = {name: (p, p.detach().clone()) for name, p in module.named_parameters()}
    reference = copy.deepcopy(module)
    with torch.no_grad():
        for name, value in params.items():
            reference.get_parameter(name).copy_(value)
    expected = reference(x)
    result = mode.run(lambda x: torch.func.functional_call(module, params, (x,)), x)
    assert_close(result, expected, clause="FUNCTIONAL-9", what=f"functional_call(module, {{{', '.join(replaced)}}}, x) ({mode}): the module with those parameters")
    for name, p in module.named_parameters():
        if p is not before[name][0]:
            fail("FUNCTIONAL-9", f"after functional_call ({mode}), module parameter {name} is a different object")
        assert_close(p, before[name][1], clause="FUNCTIONAL-9", what=f"module parameter {name} after functional_call ({mode}): unchanged")


@pytest.mark.spec("FUNCTIONAL-10")
@pytest.mark.parametrize("where", ["outside", "inside"])
@given(data=st.data())
def test_func_grad_ignores_an_outer_no_grad_and_respects_an_inner_one(device, mode, where, data):
    graph = data.draw(functional_graphs(device, mode, max_leaves=1), label="graph")
    disable = data.draw(st.sampled_from(["with torch.no_grad()", "@torch.no_grad()", "with torch.set_grad_enabled(False)"]), label="how grad is disabled")

    def disabled(fn):
        if disable.startswith("@"):
            return torch.no_grad()(fn)

        def run(*args):
            with (torch.no_grad() if "no_grad" in disable else torch.set_grad_enabled(False)):
                return fn(*args)

        return run

    (x,) = fresh(graph.leaves)
    if where == "inside":
        # f(x) = sum(values(x) * c(x)) with c(x) = values(x).cos() computed with grad disabled: a constant
        values = output_of(graph, every=True)

        def f(x):
            c = disabled(lambda x: values(x).cos())(x)
            return (values(x) * c).sum()

        (expected,) = torch.autograd.grad((values(x) * values(x).cos().detach()).sum(), x, allow_unused=True)
        (full,) = torch.autograd.grad((values(x) * values(x).cos()).sum(), x, allow_unused=True)
        if expected is None or full is None or torch.allclose(expected, full):
            vacuous("the disabled part contributes no gradient")
        run = mode.compile(lambda x: torch.func.grad(f)(x))
        result = run(graph.leaves[0])
        what = f"torch.func.grad(f)(x), f computing part of its result under `{disable}`: that part a constant"
    else:
        f = scalar_of(graph)
        (expected,) = torch.autograd.grad(f(x), x, allow_unused=True)
        if expected is None or not _nonzero([expected]):
            vacuous("the gradient is zero")
        run = mode.compile(lambda x: torch.func.grad(f)(x))
        result = disabled(run)(graph.leaves[0])
        what = f"torch.func.grad(f)(x) called under `{disable}`: the gradient computed as with grad enabled"
    expected = torch.zeros_like(x) if expected is None else expected
    assert_close(result, expected, clause="FUNCTIONAL-10", what=f"{what} ({mode})\n{graph!r}\n")
