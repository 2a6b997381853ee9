"""requires_grad: defaults, propagation, who may change it.  Spec: specs/requires_grad.md."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_equal, assert_raises, assert_requires_grad, assert_succeeds, fail
from conformance.testlib.factories import DEFAULT_ONLY_FACTORIES, FACTORIES, LIKE_FACTORIES, REQUIRES_GRAD_FACTORIES, create, create_like
from conformance.testlib.forms import FREEZE_MODULE
from conformance.testlib.graphs import GRAPH_DTYPES, graphs
from conformance.testlib.networks import freezing_seed_two_conv_network
from conformance.testlib.ops import all_forms
from conformance.testlib.strategies import (
    DIFFERENTIABLE_DTYPES,
    FLOATING_DTYPES,
    NON_DIFFERENTIABLE_DTYPES,
    REAL_DTYPES,
    dtypes,
    shapes,
    tensors,
)

# ----------------------------------------------------------------------------- REQGRAD-1, -2, -3
#
# In a compiled mode every creation runs inside a compiled function.  Dynamo does not compile a creation with
# requires_grad=True (it breaks the graph: "Attempted to use tensor creation function with requires_grad=True"),
# so REQGRAD-3's test is reported "not compiled" there.


@pytest.mark.spec("REQGRAD-1")
@pytest.mark.parametrize("factory", sorted({**FACTORIES, **DEFAULT_ONLY_FACTORIES}))
@given(data=st.data())
def test_factories_default_to_not_requiring_grad(device, mode, factory, data):
    shape = data.draw(shapes(), label="shape")
    dtype = data.draw(dtypes(REAL_DTYPES), label="dtype")
    tensor = create(factory, shape, dtype, device, mode=mode)
    assert_requires_grad(tensor, False, clause="REQGRAD-1", what=f"torch.{factory}(...) without requires_grad ({mode})")


@pytest.mark.spec("REQGRAD-2")
@pytest.mark.parametrize("factory", sorted(LIKE_FACTORIES))
@given(data=st.data())
def test_derived_factories_do_not_inherit_requires_grad(device, mode, factory, data):
    source = data.draw(tensors(dtype=dtypes(REAL_DTYPES), device=device, requires_grad=True), label="source")
    result = create_like(factory, source, mode=mode)
    assert_requires_grad(result, False, clause="REQGRAD-2", what=f"{factory}(x) where x requires grad ({mode})")


@pytest.mark.spec("REQGRAD-3")
@pytest.mark.parametrize("factory", REQUIRES_GRAD_FACTORIES)
@given(data=st.data())
def test_factory_requires_grad_true_makes_a_leaf(device, mode, factory, data):
    like = data.draw(tensors(dtype=dtypes(REAL_DTYPES), device=device, requires_grad=st.booleans()), label="tensor to make one like")
    tensor = create_like(factory, like, mode=mode, requires_grad=True)
    what = f"{factory}(..., requires_grad=True) ({mode})"
    assert_requires_grad(tensor, True, clause="REQGRAD-3", what=what)
    assert_equal(tensor.is_leaf, True, clause="REQGRAD-3", what=f"{what}.is_leaf")
    assert_equal(tensor.grad_fn, None, clause="REQGRAD-3", what=f"{what}.grad_fn")


# ----------------------------------------------------------------------------- REQGRAD-4, -5


@pytest.mark.spec("REQGRAD-4")
@given(data=st.data())
def test_parameter_requires_grad_by_default(device, mode, data):
    source = data.draw(tensors(device=device, requires_grad=st.booleans()), label="source tensor")
    param = mode.run(lambda t: torch.nn.Parameter(t), source)
    assert_requires_grad(param, True, clause="REQGRAD-4", what=f"nn.Parameter(t) with t.requires_grad={source.requires_grad} ({mode})")
    frozen = mode.run(lambda t: torch.nn.Parameter(t, requires_grad=False), source.detach())
    assert_requires_grad(frozen, False, clause="REQGRAD-4", what=f"nn.Parameter(t, requires_grad=False) ({mode})")


#: constructors of built-in modules covering the common parameter kinds
MODULES = {
    "Linear": lambda: torch.nn.Linear(3, 4),
    "Bilinear": lambda: torch.nn.Bilinear(2, 3, 4),
    "Conv1d": lambda: torch.nn.Conv1d(2, 3, 3),
    "Conv2d": lambda: torch.nn.Conv2d(3, 16, 3, 1),
    "ConvTranspose2d": lambda: torch.nn.ConvTranspose2d(2, 3, 3),
    "BatchNorm2d": lambda: torch.nn.BatchNorm2d(4),
    "LayerNorm": lambda: torch.nn.LayerNorm(5),
    "Embedding": lambda: torch.nn.Embedding(10, 3),
    "LSTM": lambda: torch.nn.LSTM(3, 4, num_layers=2),
    "GRU": lambda: torch.nn.GRU(3, 4),
    "MultiheadAttention": lambda: torch.nn.MultiheadAttention(4, 2),
    "PReLU": lambda: torch.nn.PReLU(),
    "Sequential": lambda: torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 1), torch.nn.Conv2d(16, 32, 3, 1)),
}

#: an input batch for each of :data:`MODULES`: name -> make(device) -> the forward's arguments
MODULE_INPUTS = {
    "Linear": lambda dev: (torch.randn(2, 3, device=dev),),
    "Bilinear": lambda dev: (torch.randn(2, 2, device=dev), torch.randn(2, 3, device=dev)),
    "Conv1d": lambda dev: (torch.randn(1, 2, 5, device=dev),),
    "Conv2d": lambda dev: (torch.randn(1, 3, 5, 5, device=dev),),
    "ConvTranspose2d": lambda dev: (torch.randn(1, 2, 4, 4, device=dev),),
    "BatchNorm2d": lambda dev: (torch.randn(2, 4, 3, 3, device=dev),),
    "LayerNorm": lambda dev: (torch.randn(2, 5, device=dev),),
    "Embedding": lambda dev: (torch.tensor([[1, 2], [3, 9]], device=dev),),
    "LSTM": lambda dev: (torch.randn(4, 2, 3, device=dev),),
    "GRU": lambda dev: (torch.randn(4, 2, 3, device=dev),),
    "MultiheadAttention": lambda dev: (torch.randn(3, 2, 4, device=dev),) * 3,
    "PReLU": lambda dev: (torch.randn(2, 3, device=dev),),
    "Sequential": lambda dev: (torch.randn(1, 3, 7, 7, device=dev),),
}


@pytest.mark.spec("REQGRAD-5")
@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_module_parameters_require_grad_and_buffers_do_not(device, mode, module_name):
    """Checked on the fresh module, then after a forward pass (BatchNorm writes its buffers) of the module as the
    user runs it: compiled (``torch.compile(module)``) in a compiled mode.

    Dynamo does not compile ``nn.LSTM`` and ``nn.GRU`` ("Attempted to wrap RNN, GRU, or LSTM"): those cases are
    reported "not compiled" in compiled modes.
    """
    module = mode.module(MODULES[module_name]().to(device))
    for when in ("fresh", "after a forward pass"):
        if when != "fresh":
            module(*MODULE_INPUTS[module_name](device))
        params = list(module.named_parameters())
        assert params, f"{module_name} has no parameters: the test table is wrong"
        for name, param in params:
            assert_requires_grad(param, True, clause="REQGRAD-5", what=f"{module_name}().to({device!r}).{name}, {when} ({mode})")
            assert_equal(param.is_leaf, True, clause="REQGRAD-5", what=f"{module_name}.{name}.is_leaf, {when} ({mode})")
        for name, buffer in module.named_buffers():
            assert_requires_grad(buffer, False, clause="REQGRAD-5", what=f"buffer {module_name}.{name}, {when} ({mode})")


# ----------------------------------------------------------------------------- REQGRAD-6


def _check_propagation(inputs, output, source: str, mode) -> None:
    __tracebackhide__ = True
    flags = [t.requires_grad for t in inputs]
    what = f"in grad mode, `{source}` with inputs requiring grad {flags} ({mode})"
    assert_requires_grad(output, any(flags), clause="REQGRAD-6", what=what)


def _each_applied(function, arity: int):
    """A program applying ``function`` to consecutive groups of ``arity`` arguments: one compiled program for many cases."""

    def program(*flat):
        return tuple(function(*flat[start : start + arity]) for start in range(0, len(flat), arity))

    return program


#: inputs every op form is tried on: 0-d, empty, 1-d, 2-d, 3-d
SAMPLE_SHAPES = [(), (0,), (3,), (2, 3), (2, 0), (1, 2, 3)]
#: in a compiled mode, an op form is tried on the first of these it applies to, per dtype: compile time grows with the
#: program's length (about 0.1 s per operation under aot_eager: the exhaustive product would be ~50 operations per
#: form), so compiled runs check every requires_grad pattern of the operands on one shape per dtype
COMPILED_SAMPLE_SHAPES = [(2, 3), (1, 2, 3), (3,), ()]


@pytest.mark.spec("REQGRAD-6")
@pytest.mark.parametrize("op", all_forms(), ids=lambda form: form.id)
def test_each_op_form_output_requires_grad_iff_an_input_does(device, mode, op):
    """Exhaustive over sample shapes, dtypes and every requires_grad pattern of the operands.  In a compiled mode the
    cases (every pattern, on one shape per dtype: :data:`COMPILED_SAMPLE_SHAPES`) run in one compiled program; ops
    whose output shape depends on the values (``masked_select``) break its graph: reported "not compiled"."""
    cases = []
    covered_dtypes = set()
    generator = torch.Generator().manual_seed(0)
    for shape, dtype in itertools.product(COMPILED_SAMPLE_SHAPES if mode.compiled else SAMPLE_SHAPES, GRAPH_DTYPES):
        values = [torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device) for _ in range(op.op.arity)]
        if not op.op.applicable(values[0]) or (op.op.arity == 2 and not op.op.partner(*values)):
            continue
        if mode.compiled and dtype in covered_dtypes:
            continue
        covered_dtypes.add(dtype)
        for flags in itertools.product((False, True), repeat=op.op.arity):
            cases.append([v.clone().requires_grad_(flag) for v, flag in zip(values, flags)])
    assert cases, f"no sample shape applies to {op.id}: extend SAMPLE_SHAPES"
    outputs = mode.run(_each_applied(op, op.op.arity), *itertools.chain.from_iterable(cases))
    for inputs, output in zip(cases, outputs):
        _check_propagation(inputs, output, op.source("a", "b"), mode)


@pytest.mark.spec("REQGRAD-6")
@given(data=st.data())
def test_output_requires_grad_iff_an_input_does_over_random_graphs(device, mode, data):
    graph = data.draw(graphs(device=device, mode=mode), label="graph")
    for step in graph.trace(mode=mode):
        _check_propagation(step.inputs, step.output, step.source, mode)


#: dtype conversions: name -> call(x, dtype); ``x.<method>()`` is the dtype's own method (``x.bfloat16()``, ...)
DTYPE_CONVERSIONS = {
    "x.to(dtype)": lambda x, dtype: x.to(dtype),
    "x.to(x.device, dtype)": lambda x, dtype: x.to(x.device, dtype),
    "x.type(dtype)": lambda x, dtype: x.type(dtype),
    "x.<dtype method>()": lambda x, dtype: getattr(x, _CONVERSION_METHODS[dtype])(),
}
_CONVERSION_METHODS = {torch.float16: "half", torch.bfloat16: "bfloat16", torch.float32: "float", torch.float64: "double", torch.complex64: "cfloat", torch.complex128: "cdouble"}


@pytest.mark.spec("REQGRAD-6")
@pytest.mark.parametrize("conversion", sorted(DTYPE_CONVERSIONS))
def test_dtype_conversion_requires_grad_iff_its_input_does(device, mode, conversion):
    """Exhaustive over floating-point sources, differentiable targets and both flags (bfloat16 once lost it: pytorch/pytorch#28548);
    in a compiled mode all conversions run in one compiled program."""
    convert = DTYPE_CONVERSIONS[conversion]
    cases = list(itertools.product(FLOATING_DTYPES, DIFFERENTIABLE_DTYPES, (False, True)))
    sources = [torch.ones(2, 3, dtype=source, device=device, requires_grad=flag) for source, _, flag in cases]
    targets = [target for _, target, _ in cases]

    def convert_each(*xs):
        return tuple(convert(x, target) for x, target in zip(xs, targets))

    for (source, target, flag), converted in zip(cases, mode.run(convert_each, *sources)):
        what = f"in grad mode, `{conversion}` from {source} to {target} of a tensor with requires_grad={flag} ({mode})"
        assert_requires_grad(converted, flag, clause="REQGRAD-6", what=what)


# ----------------------------------------------------------------------------- REQGRAD-7


@pytest.mark.spec("REQGRAD-7")
@pytest.mark.parametrize("freeze", sorted(FREEZE_MODULE))
@given(data=st.data())
def test_frozen_module_output_does_not_require_grad(device, mode, freeze, data):
    """In a compiled mode the network is compiled once, after freezing; the input's flag and a parameter's flag then
    change between calls of the compiled network."""
    net = freezing_seed_two_conv_network(device)
    FREEZE_MODULE[freeze](net)
    compiled = mode.module(net)
    batch = data.draw(tensors(shape=st.tuples(st.integers(1, 3), st.just(3), st.integers(5, 7), st.integers(5, 7)), dtype=torch.float32, device=device), label="input batch")
    assert_requires_grad(compiled(batch), False, clause="REQGRAD-7", what=f"output of a network frozen via {freeze}, input not requiring grad ({mode})")

    batch.requires_grad_(True)
    assert_requires_grad(compiled(batch), True, clause="REQGRAD-7", what=f"output of a network frozen via {freeze}, input requiring grad ({mode})")

    names = [name for name, _ in net.named_parameters()]
    trainable = data.draw(st.sampled_from(names), label="parameter left trainable")
    dict(net.named_parameters())[trainable].requires_grad_(True)
    assert_requires_grad(compiled(batch.detach()), True, clause="REQGRAD-7", what=f"output of a network with only {trainable} trainable ({mode})")


# ----------------------------------------------------------------------------- REQGRAD-8, -9

NON_DIFFERENTIABLE_MATCH = r"(?i)only tensors of floating point"

#: ways to ask for a tensor that requires grad: name -> make(dtype, device, mode).  In a compiled mode the tensor is
#: made inside a compiled function; ``requires_grad_()`` and the setter act on it around the compiled code (inside it
#: dynamo breaks the graph on both: "Unsupported Tensor.requires_grad_() call", "setattr() on Tensor.requires_grad"),
#: and the factory argument is inside (a graph break too: those cases are reported "not compiled").
REQUIRE_GRAD_FORMS = {
    "factory argument": lambda dtype, device, mode: mode.run(lambda: torch.zeros(2, dtype=dtype, device=device, requires_grad=True)),
    "requires_grad_()": lambda dtype, device, mode: mode.run(lambda: torch.zeros(2, dtype=dtype, device=device)).requires_grad_(),
    "attribute setter": lambda dtype, device, mode: _set_attribute(mode.run(lambda: torch.zeros(2, dtype=dtype, device=device)), True),
}


def _set_attribute(tensor: torch.Tensor, flag: bool) -> torch.Tensor:
    tensor.requires_grad = flag
    return tensor


@pytest.mark.spec("REQGRAD-8")
@pytest.mark.parametrize("form", sorted(REQUIRE_GRAD_FORMS))
@pytest.mark.parametrize("dtype", NON_DIFFERENTIABLE_DTYPES, ids=str)
def test_integer_and_bool_tensors_cannot_require_grad(device, mode, form, dtype):
    """In a compiled mode the factory argument raises while dynamo traces the function (nothing compiles: reported
    "not compiled"); the other forms act on the compiled function's output."""
    with assert_raises(RuntimeError, match=NON_DIFFERENTIABLE_MATCH, clause="REQGRAD-8", what=f"requiring grad of a {dtype} tensor via {form} ({mode})"):
        REQUIRE_GRAD_FORMS[form](dtype, device, mode)


@pytest.mark.spec("REQGRAD-9")
@pytest.mark.parametrize("form", sorted(REQUIRE_GRAD_FORMS))
@pytest.mark.parametrize("dtype", DIFFERENTIABLE_DTYPES, ids=str)
def test_floating_and_complex_tensors_can_require_grad(device, mode, form, dtype):
    with assert_succeeds(clause="REQGRAD-9", what=f"asking a {dtype} tensor to require grad via {form} ({mode})"):
        tensor = REQUIRE_GRAD_FORMS[form](dtype, device, mode)
    assert_requires_grad(tensor, True, clause="REQGRAD-9", what=f"a {dtype} tensor asked to require grad via {form} ({mode})")


# ----------------------------------------------------------------------------- REQGRAD-10, -11, -12


class _UserTensor(torch.Tensor):
    """A user's Tensor subclass (``requires_grad_`` on subclasses went wrong under no_grad: pytorch/pytorch#50219)."""


#: kinds of leaf: name -> make(plain leaf tensor)
LEAF_KINDS = {
    "Tensor": lambda t: t,
    "nn.Parameter(requires_grad=False)": lambda t: torch.nn.Parameter(t, requires_grad=False),
    "Tensor subclass": lambda t: t.as_subclass(_UserTensor),
}


@pytest.mark.spec("REQGRAD-10")
@pytest.mark.parametrize("grad_mode", ["grad mode", "no_grad"])
@pytest.mark.parametrize("kind", sorted(LEAF_KINDS))
@given(data=st.data())
def test_requires_grad_method_and_setter_change_a_leaf(device, mode, kind, grad_mode, data):
    """In a compiled mode the leaf is made in a compiled function (its kind's constructor), its flag is changed around
    the compiled code (inside it dynamo breaks the graph on ``requires_grad_()`` and on the setter) and, after each
    change, a compiled function reads the flag."""
    leaf = mode.run(LEAF_KINDS[kind], data.draw(tensors(dtype=dtypes(DIFFERENTIABLE_DTYPES), device=device), label="leaf"))
    read_flag = mode.compile(lambda t: t.requires_grad)

    def check_flag(expected: bool, after: str) -> None:
        __tracebackhide__ = True
        assert_requires_grad(leaf, expected, clause="REQGRAD-10", what=f"t after {after}, {where}")
        assert_equal(read_flag(leaf), expected, clause="REQGRAD-10", what=f"t.requires_grad read by a function called after {after}, {where}")

    with torch.set_grad_enabled(grad_mode == "grad mode"):
        where = f"on a {kind} leaf in {grad_mode} ({mode})"
        returned = leaf.requires_grad_()
        assert_equal(returned is leaf, True, clause="REQGRAD-10", what=f"t.requires_grad_() is t, {where}")
        check_flag(True, "t.requires_grad_() (default argument)")
        assert_equal(leaf.requires_grad_(False) is leaf, True, clause="REQGRAD-10", what=f"t.requires_grad_(False) is t, {where}")
        check_flag(False, "t.requires_grad_(False)")
        leaf.requires_grad = True
        check_flag(True, "t.requires_grad = True")
        leaf.requires_grad = False
        check_flag(False, "t.requires_grad = False")


def _draw_non_leaf(data, device, mode):
    """A tensor produced by a recorded op: drawn graph output that is not a leaf (in a compiled mode: the output of the
    compiled program; the flag changes act on it around the compiled code, since inside it dynamo breaks the graph on them)."""
    graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")
    output = graph.output(mode=mode)
    assume(not output.is_leaf)
    return output, graph


@pytest.mark.spec("REQGRAD-11")
@pytest.mark.parametrize("flag", [False, True])
@given(data=st.data())
def test_requires_grad_setter_raises_on_a_non_leaf(device, mode, flag, data):
    output, graph = _draw_non_leaf(data, device, mode)
    with assert_raises(RuntimeError, match="leaf", clause="REQGRAD-11", what=f"setting requires_grad = {flag} on the non-leaf output ({mode}) of {graph!r}\n"):
        output.requires_grad = flag


@pytest.mark.spec("REQGRAD-12")
@given(data=st.data())
def test_requires_grad_method_on_a_non_leaf(device, mode, data):
    output, graph = _draw_non_leaf(data, device, mode)
    with assert_raises(RuntimeError, match="detach", clause="REQGRAD-12", what=f"requires_grad_(False) on the non-leaf output ({mode}) of {graph!r}\n"):
        output.requires_grad_(False)
    assert_equal(output.requires_grad_(True) is output, True, clause="REQGRAD-12", what=f"non-leaf y.requires_grad_(True) is y ({mode})")
    assert_requires_grad(output, True, clause="REQGRAD-12", what=f"non-leaf y after y.requires_grad_(True) ({mode})")


# ----------------------------------------------------------------------------- REQGRAD-13


@pytest.mark.spec("REQGRAD-13")
@given(data=st.data())
def test_grad_fn_is_none_exactly_for_leaves(device, mode, data):
    """In a compiled mode the results are the compiled program's outputs (under AOTAutograd their grad_fn is the
    compiled region's node, CompiledFunctionBackward)."""
    graph = data.draw(graphs(device=device, mode=mode), label="graph")
    for index, leaf in enumerate(graph.leaves):
        if leaf.grad_fn is not None or not leaf.is_leaf:
            fail("REQGRAD-13", f"leaf t{index} should have is_leaf=True and grad_fn None, got {leaf.is_leaf}, {leaf.grad_fn}")
    for step in graph.trace(mode=mode):
        out = step.output
        if (out.grad_fn is None) != out.is_leaf:
            fail("REQGRAD-13", f"`{step.source}` ({mode}): grad_fn is {out.grad_fn} but is_leaf is {out.is_leaf}")
        returned_input = any(out is t for t in step.inputs)
        if out.requires_grad and not returned_input and out.is_leaf:
            fail("REQGRAD-13", f"`{step.source}` ({mode}) requires grad but is a leaf with no grad_fn (the op was not recorded)")
        if not out.requires_grad and not out.is_leaf:
            fail("REQGRAD-13", f"`{step.source}` ({mode}) does not require grad but is not a leaf (grad_fn={out.grad_fn})")
