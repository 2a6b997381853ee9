"""Registry of differentiable torch operations, each in all its call forms.

An op's forms are source templates (``"torch.sin({a})"``, ``"{a}.sin()"``, ...):
the same text is compiled to run the op and printed in failure messages, so what
a report shows is exactly what ran.  Forms are

* ``function`` -- ``torch.*`` / ``torch.nn.functional.*``;
* ``method``   -- ``Tensor.*``;
* ``operator`` -- Python syntax: ``+``, ``@``, ``-x``, ``abs(x)``, ``x[...]``, ``x.mT``;
* ``module``   -- an ``nn.Module`` instance called on the input.

Every op here is differentiable in each floating-point operand and returns one
floating-point tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Mapping

import torch

__all__ = ["FORMS", "KINDS", "OPS", "Op", "OpForm", "all_forms", "ops_by_name"]

FORMS = ("function", "method", "operator", "module")
KINDS = ("elementwise", "binary", "reduction", "linalg", "view", "indexing")

_NAMESPACE = {"torch": torch, "F": torch.nn.functional, "nn": torch.nn}

Accepts = Callable[..., bool]


def _any(*tensors: torch.Tensor) -> bool:
    return True


def _min_dims(n: int) -> Accepts:
    return lambda a: a.dim() >= n


def _exact_dims(n: int) -> Accepts:
    return lambda a: a.dim() == n


def _nonempty_last_dim(a: torch.Tensor) -> bool:
    return a.dim() >= 1 and a.shape[-1] >= 1


def _nonempty_first_dim(a: torch.Tensor) -> bool:
    return a.dim() >= 1 and a.shape[0] >= 1


def _broadcastable(a: torch.Tensor, b: torch.Tensor) -> bool:
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        return False
    return True


def _same_shape(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape


def _vectors(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dim() == 1 and b.dim() == 1


@dataclass(frozen=True)
class OpForm:
    op: "Op"
    form: str
    template: str
    #: the template as a Python function of the operands ``a`` (and ``b``): a plain function that
    #: torch.compile traces like user code
    fn: Callable[..., torch.Tensor] = field(repr=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.op.name}-{self.form}"

    def source(self, *names: str) -> str:
        return self.template.format(**dict(zip("ab", names)))

    def __call__(self, *operands: torch.Tensor) -> torch.Tensor:
        return self.fn(*operands)


@dataclass(frozen=True)
class Op:
    name: str
    kind: str
    arity: int
    templates: Mapping[str, str]
    accepts: Accepts = _any  # predicate on the first operand
    partner: Accepts = _broadcastable  # predicate on (first, second) for binary ops
    #: torch.compile traces it into one graph; False for ops whose output shape depends on the values
    #: (dynamo breaks the graph there unless ``capture_dynamic_output_shape_ops`` is set)
    compiles_whole: bool = True

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind
        assert self.templates and set(self.templates) <= set(FORMS), self.templates

    @cached_property
    def forms(self) -> tuple[OpForm, ...]:
        return tuple(OpForm(self, form, template, _as_function(self, form, template)) for form, template in self.templates.items())

    def applicable(self, a: torch.Tensor) -> bool:
        return bool(self.accepts(a))


def _as_function(op: "Op", form: str, template: str) -> Callable[..., torch.Tensor]:
    params = "a, b" if op.arity == 2 else "a"
    code = compile(f"lambda {params}: {template.format(a='a', b='b')}", f"<op {op.name}/{form}>", "eval")
    return eval(code, dict(_NAMESPACE))  # noqa: S307 - our own templates


def _unary(name, kind, accepts=_any, **templates) -> Op:
    return Op(name, kind, 1, templates, accepts)


def _binary(name, kind, partner=_broadcastable, accepts=_any, **templates) -> Op:
    return Op(name, kind, 2, templates, accepts, partner)


OPS: tuple[Op, ...] = (
    # elementwise unary
    _unary("neg", "elementwise", function="torch.neg({a})", method="{a}.neg()", operator="-{a}"),
    _unary("abs", "elementwise", function="torch.abs({a})", method="{a}.abs()", operator="abs({a})"),
    _unary("sin", "elementwise", function="torch.sin({a})", method="{a}.sin()"),
    _unary("cos", "elementwise", function="torch.cos({a})", method="{a}.cos()"),
    _unary("exp", "elementwise", function="torch.exp({a})", method="{a}.exp()"),
    _unary("tanh", "elementwise", function="torch.tanh({a})", method="{a}.tanh()", module="nn.Tanh()({a})"),
    _unary("sigmoid", "elementwise", function="torch.sigmoid({a})", method="{a}.sigmoid()", module="nn.Sigmoid()({a})"),
    _unary("relu", "elementwise", function="torch.relu({a})", method="{a}.relu()", module="nn.ReLU()({a})"),
    _unary("gelu", "elementwise", function="F.gelu({a})", module="nn.GELU()({a})"),
    _unary("square", "elementwise", function="torch.square({a})", method="{a}.square()", operator="{a} ** 2"),
    _unary("clamp", "elementwise", function="torch.clamp({a}, -1.0, 1.0)", method="{a}.clamp(-1.0, 1.0)"),
    _unary("clone", "elementwise", function="torch.clone({a})", method="{a}.clone()"),
    _unary("scale", "elementwise", function="torch.mul({a}, 0.5)", method="{a}.mul(0.5)", operator="{a} * 0.5"),
    # broadcasting binary
    _binary("add", "binary", function="torch.add({a}, {b})", method="{a}.add({b})", operator="{a} + {b}"),
    _binary("sub", "binary", function="torch.sub({a}, {b})", method="{a}.sub({b})", operator="{a} - {b}"),
    _binary("mul", "binary", function="torch.mul({a}, {b})", method="{a}.mul({b})", operator="{a} * {b}"),
    _binary("div", "binary", function="torch.div({a}, {b})", method="{a}.div({b})", operator="{a} / {b}"),
    _binary("maximum", "binary", function="torch.maximum({a}, {b})", method="{a}.maximum({b})"),
    _binary("atan2", "binary", function="torch.atan2({a}, {b})", method="{a}.atan2({b})"),
    _binary("where", "indexing", function="torch.where({a} > 0, {a}, {b})", method="{a}.where({a} > 0, {b})"),
    # reductions
    _unary("sum", "reduction", function="torch.sum({a})", method="{a}.sum()"),
    _unary("sum_dim", "reduction", _min_dims(1), function="torch.sum({a}, dim=-1, keepdim=True)", method="{a}.sum(-1, keepdim=True)"),
    _unary("mean", "reduction", function="torch.mean({a})", method="{a}.mean()"),
    _unary("prod", "reduction", function="torch.prod({a})", method="{a}.prod()"),
    _unary("amax", "reduction", _nonempty_last_dim, function="torch.amax({a}, dim=-1, keepdim=True)", method="{a}.amax(dim=-1, keepdim=True)"),
    _unary("logsumexp", "reduction", _min_dims(1), function="torch.logsumexp({a}, dim=-1, keepdim=True)", method="{a}.logsumexp(-1, keepdim=True)"),
    _unary("vector_norm", "reduction", function="torch.linalg.vector_norm({a})", method="{a}.norm()"),
    _unary("softmax", "reduction", _min_dims(1), function="torch.softmax({a}, dim=-1)", method="{a}.softmax(dim=-1)", module="nn.Softmax(dim=-1)({a})"),
    _unary("cumsum", "reduction", _min_dims(1), function="torch.cumsum({a}, dim=-1)", method="{a}.cumsum(-1)"),
    # linear algebra
    _binary("matmul", "linalg", _same_shape, _min_dims(2), function="torch.matmul({a}, {b}.mT)", method="{a}.matmul({b}.mT)", operator="{a} @ {b}.mT"),
    _binary("dot", "linalg", _same_shape, _exact_dims(1), function="torch.dot({a}, {b})", method="{a}.dot({b})", operator="{a} @ {b}"),
    _binary("outer", "linalg", _vectors, _exact_dims(1), function="torch.outer({a}, {b})", method="{a}.outer({b})"),
    _binary("einsum", "linalg", _same_shape, _min_dims(2), function="torch.einsum('...ij,...kj->...ik', {a}, {b})"),
    # views and shape changes
    _unary("transpose", "view", _min_dims(1), function="torch.transpose({a}, 0, -1)", method="{a}.transpose(0, -1)"),
    _unary("mT", "view", _min_dims(2), operator="{a}.mT", method="{a}.transpose(-2, -1)"),
    _unary("permute", "view", function="torch.permute({a}, tuple(reversed(range({a}.dim()))))", method="{a}.permute(tuple(reversed(range({a}.dim()))))"),
    _unary("flatten", "view", function="torch.flatten({a})", method="{a}.flatten()", operator="{a}.contiguous().view(-1)"),
    _unary("reshape", "view", function="torch.reshape({a}, (-1,))", method="{a}.reshape(-1)"),
    _unary("unsqueeze", "view", function="torch.unsqueeze({a}, 0)", method="{a}.unsqueeze(0)", operator="{a}[None]"),
    _unary("squeeze", "view", function="torch.squeeze({a})", method="{a}.squeeze()"),
    _unary("expand", "view", function="torch.broadcast_to({a}, (2,) + tuple({a}.shape))", method="{a}.expand((2,) + tuple({a}.shape))"),
    _unary("view_as", "view", method="{a}.view_as({a})", operator="{a}[...]"),
    # indexing and joining
    _unary("slice", "indexing", _min_dims(1), function="torch.narrow({a}, -1, 0, {a}.shape[-1] // 2)", method="{a}.narrow(-1, 0, {a}.shape[-1] // 2)", operator="{a}[..., : {a}.shape[-1] // 2]"),
    _unary("select", "indexing", _nonempty_first_dim, function="torch.select({a}, 0, 0)", method="{a}.select(0, 0)", operator="{a}[0]"),
    Op("masked_select", "indexing", 1, dict(function="torch.masked_select({a}, {a} > 0)", method="{a}.masked_select({a} > 0)", operator="{a}[{a} > 0]"), compiles_whole=False),
    _binary("cat", "indexing", _same_shape, _min_dims(1), function="torch.cat([{a}, {b}], dim=-1)"),
    _binary("stack", "indexing", _same_shape, function="torch.stack([{a}, {b}])"),
)


def ops_by_name() -> dict[str, Op]:
    return {op.name: op for op in OPS}


def all_forms(kinds: tuple[str, ...] = KINDS) -> tuple[OpForm, ...]:
    return tuple(form for op in OPS if op.kind in kinds for form in op.forms)
