"""The op registry (conformance/testlib/ops.py)."""

from __future__ import annotations

import re
from typing import Iterator

import pytest
import torch

from conformance.testlib.ops import FORMS, KINDS, OPS, Op, OpForm, all_forms, ops_by_name

SAMPLE_SHAPES = [(), (0,), (3,), (2, 3), (1, 2, 3)]


def sample(shape: tuple[int, ...], seed: int, requires_grad: bool = False) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_(requires_grad)


def operand_sets(op: Op, requires_grad: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
    """Every applicable (first[, partner]) combination of the sample shapes."""
    for first_index, first_shape in enumerate(SAMPLE_SHAPES):
        a = sample(first_shape, seed=first_index, requires_grad=requires_grad)
        if not op.applicable(a):
            continue
        if op.arity == 1:
            yield (a,)
            continue
        for second_index, second_shape in enumerate(SAMPLE_SHAPES):
            b = sample(second_shape, seed=100 + second_index, requires_grad=requires_grad)
            if op.partner(a, b):
                yield (a, b)


def describe(operands: tuple[torch.Tensor, ...]) -> str:
    return ", ".join(str(tuple(t.shape)) for t in operands)


by_op = pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)


# ----------------------------------------------------------------------------- registry shape


def test_op_names_are_unique():
    names = [op.name for op in OPS]
    assert len(names) == len(set(names)) == len(ops_by_name())


@by_op
def test_every_op_has_a_form(op):
    assert op.forms
    assert all(isinstance(form, OpForm) and form.op is op and form.form in FORMS for form in op.forms)
    assert op.kind in KINDS


@by_op
def test_templates_use_exactly_the_operands_of_the_arity(op):
    for form in op.forms:
        placeholders = set(re.findall(r"\{(\w)\}", form.template))
        assert placeholders == set("ab"[: op.arity]), form.template


@by_op
def test_every_op_has_an_applicable_sample(op):
    assert any(True for _ in operand_sets(op)), f"no sample input fits {op.name}"


def test_registry_covers_every_kind():
    assert {op.kind for op in OPS} == set(KINDS)


def test_registry_covers_every_form():
    assert {form.form for op in OPS for form in op.forms} == set(FORMS)


def test_all_forms_filters_by_kind():
    binary = all_forms(("binary",))
    assert binary and all(form.op.kind == "binary" for form in binary)
    assert len(all_forms()) == sum(len(op.forms) for op in OPS)


def test_form_ids_are_unique():
    ids = [form.id for form in all_forms()]
    assert len(ids) == len(set(ids))
    assert ops_by_name()["add"].forms[0].id == "add-function"


# ----------------------------------------------------------------------------- OpForm.source


def form_of(op_name: str, form: str) -> OpForm:
    (match,) = [f for f in ops_by_name()[op_name].forms if f.form == form]
    return match


@pytest.mark.parametrize(
    "op_name, form, names, expected",
    [
        ("add", "operator", ("t0", "t1"), "t0 + t1"),
        ("add", "method", ("t0", "t1"), "t0.add(t1)"),
        ("matmul", "function", ("t0", "t1"), "torch.matmul(t0, t1.mT)"),
        ("sin", "function", ("t3",), "torch.sin(t3)"),
        ("tanh", "module", ("x",), "nn.Tanh()(x)"),
        ("slice", "operator", ("t2",), "t2[..., : t2.shape[-1] // 2]"),
    ],
)
def test_source_substitutes_names(op_name, form, names, expected):
    assert form_of(op_name, form).source(*names) == expected


# ----------------------------------------------------------------------------- behaviour


@by_op
def test_every_form_agrees_with_the_first(op):
    reference, *others = op.forms
    for operands in operand_sets(op):
        expected = reference(*operands)
        for form in others:
            actual = form(*operands)
            assert actual.shape == expected.shape, f"{form.id} on {describe(operands)}"
            torch.testing.assert_close(actual, expected, equal_nan=True, msg=lambda m: f"{form.id} on {describe(operands)}: {m}")


@by_op
def test_every_form_returns_one_floating_tensor(op):
    for operands in operand_sets(op):
        for form in op.forms:
            out = form(*operands)
            assert isinstance(out, torch.Tensor) and out.dtype == torch.float64, f"{form.id} on {describe(operands)}"


@by_op
def test_every_form_is_differentiable(op):
    for operands in operand_sets(op, requires_grad=True):
        for form in op.forms:
            out = form(*operands)
            where = f"{form.id} on {describe(operands)}"
            assert out.requires_grad, where
            grads = torch.autograd.grad(out.sum(), operands, allow_unused=True)
            for operand, grad in zip(operands, grads):
                assert grad is not None and grad.shape == operand.shape, where
