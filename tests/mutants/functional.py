"""Mutants of the functional clauses (specs/functional.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch
import torch.autograd.functional as AF

from tests.mutants.base import Mutant


def _flip_output_dims(result: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    out_dims = list(range(result.dim() - x.dim()))
    return result.flip(out_dims) if out_dims else result


def _vectorized_jacobian_rows_reversed(mp):
    original = AF.jacobian

    def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
        result = original(func, inputs, create_graph, strict, vectorize, strategy)
        if not vectorize:
            return result
        if isinstance(inputs, torch.Tensor):
            return _flip_output_dims(result, inputs)
        return tuple(_flip_output_dims(r, x) for r, x in zip(result, inputs))

    mp.setattr(AF, "jacobian", jacobian)


def _ones_like_structure(v):
    if isinstance(v, torch.Tensor):
        return torch.ones_like(v)
    return tuple(torch.ones_like(t) for t in v)


def _product_ignores_v(name: str):
    def apply(mp):
        original = getattr(AF, name)

        def product(func, inputs, v=None, create_graph=False, strict=False):
            return original(func, inputs, None if v is None else _ones_like_structure(v), create_graph, strict)

        mp.setattr(AF, name, product)

    return apply


def _hessian_inner_gradient_detached(mp):
    original = AF.hessian

    def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
        result = original(func, inputs, create_graph, strict, vectorize, outer_jacobian_strategy)
        # what jacobian gives (strict=False) when the inner gradient is built without create_graph: zeros
        if isinstance(result, torch.Tensor):
            return torch.zeros_like(result)
        return tuple(tuple(torch.zeros_like(h) for h in row) for row in result)

    mp.setattr(AF, "hessian", hessian)


def _functional_api_ignores_create_graph_false(mp):
    for name in ("jacobian", "vjp", "jvp"):
        original = getattr(AF, name)

        def always(*args, _original=original, **kwargs):
            kwargs["create_graph"] = True
            return _original(*args, **kwargs)

        mp.setattr(AF, name, always)


def _func_grad_seeds_minus_one(mp):
    grad, grad_and_value = torch.func.grad, torch.func.grad_and_value

    def negated(g):
        return tuple(-t for t in g) if isinstance(g, tuple) else -g

    def mutant_grad(func, argnums=0, has_aux=False):
        inner = grad(func, argnums, has_aux)

        def call(*args, **kwargs):
            result = inner(*args, **kwargs)
            return (negated(result[0]), result[1]) if has_aux else negated(result)

        return call

    def mutant_grad_and_value(func, argnums=0, has_aux=False):
        inner = grad_and_value(func, argnums, has_aux)

        def call(*args, **kwargs):
            g, value = inner(*args, **kwargs)
            return negated(g), value

        return call

    mp.setattr(torch.func, "grad", mutant_grad)
    mp.setattr(torch.func, "grad_and_value", mutant_grad_and_value)


def _func_vjp_ignores_the_cotangent(mp):
    original = torch.func.vjp

    def vjp(func, *primals, **kwargs):
        out, vjp_fn = original(func, *primals, **kwargs)
        return out, lambda v, *rest, **kw: vjp_fn(torch.ones_like(v), *rest, **kw)

    mp.setattr(torch.func, "vjp", vjp)


def _func_jvp_ignores_the_tangents(mp):
    original = torch.func.jvp

    def jvp(func, primals, tangents, *args, **kwargs):
        return original(func, primals, tuple(torch.ones_like(t) for t in tangents), *args, **kwargs)

    mp.setattr(torch.func, "jvp", jvp)


def _input_dims_first(result: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    n_out = result.dim() - x.dim()
    return result.permute(tuple(range(n_out, result.dim())) + tuple(range(n_out)))


def _jacobian_transform_puts_input_dims_first(name: str):
    def apply(mp):
        original = getattr(torch.func, name)

        def transform(func, argnums=0, *args, **kwargs):
            inner = original(func, argnums, *args, **kwargs)

            def call(*primals):
                result = inner(*primals)
                if isinstance(argnums, tuple):
                    return tuple(_input_dims_first(r, primals[n]) for r, n in zip(result, argnums))
                return _input_dims_first(result, primals[argnums])

            return call

        mp.setattr(torch.func, name, transform)

    return apply


def _func_hessian_zero(mp):
    original = torch.func.hessian

    def hessian(func, argnums=0):
        inner = original(func, argnums)

        def call(*primals):
            result = inner(*primals)
            if isinstance(result, torch.Tensor):
                return torch.zeros_like(result)
            return tuple(tuple(torch.zeros_like(h) for h in row) for row in result)

        return call

    mp.setattr(torch.func, "hessian", hessian)


def _vmap_ignores_out_dims(mp):
    original = torch.func.vmap

    def vmap(func, in_dims=0, out_dims=0, *args, **kwargs):
        return original(func, in_dims, 0, *args, **kwargs)

    mp.setattr(torch.func, "vmap", vmap)


def _functional_call_keeps_the_new_parameters(mp):
    original = torch.func.functional_call

    def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, **options):
        result = original(module, parameter_and_buffer_dicts, args, kwargs, **options)
        with torch.no_grad():  # the swap back is lost: the module keeps the values it was called with
            for name, value in dict(parameter_and_buffer_dicts).items():
                module.get_parameter(name).copy_(value)
        return result

    mp.setattr(torch.func, "functional_call", functional_call)


def _functional_call_ignores_the_parameters(mp):
    original = torch.func.functional_call

    def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, **options):
        return original(module, {}, args, kwargs, **options)

    mp.setattr(torch.func, "functional_call", functional_call)


def _func_grad_respects_an_outer_no_grad(mp):
    original = torch.func.grad

    def grad(func, argnums=0, has_aux=False):
        inner = original(func, argnums, has_aux)

        def call(*args, **kwargs):
            if torch.is_grad_enabled():
                return inner(*args, **kwargs)
            # as if f ran under the caller's no_grad: nothing recorded, the gradient zero
            return torch.zeros_like(args[argnums]) if isinstance(argnums, int) else tuple(torch.zeros_like(args[n]) for n in argnums)

        return call

    mp.setattr(torch.func, "grad", grad)


def _func_grad_ignores_an_inner_no_grad(mp):
    inside = {"grad": False}
    original_grad, original_no_grad = torch.func.grad, torch.no_grad

    class no_grad(original_no_grad):
        def __enter__(self):
            if inside["grad"]:
                self.prev = torch.is_grad_enabled()  # grad stays enabled: the transform records through it
                return None
            return super().__enter__()

    def grad(func, argnums=0, has_aux=False):
        inner = original_grad(func, argnums, has_aux)

        def call(*args, **kwargs):
            inside["grad"] = True
            try:
                return inner(*args, **kwargs)
            finally:
                inside["grad"] = False

        return call

    mp.setattr(torch, "no_grad", no_grad)
    mp.setattr(torch.func, "grad", grad)


MUTANTS: tuple[Mutant, ...] = (
    Mutant("vectorized_jacobian_rows_reversed", ("FUNCTIONAL-1",), "jacobian(vectorize=True) returns the rows of the Jacobian in reverse order (the batched gradients unpacked backwards)", _vectorized_jacobian_rows_reversed),
    Mutant("functional_vjp_ignores_v", ("FUNCTIONAL-2",), "torch.autograd.functional.vjp seeds the backward with ones instead of v", _product_ignores_v("vjp")),
    Mutant("functional_jvp_ignores_v", ("FUNCTIONAL-2",), "torch.autograd.functional.jvp multiplies the Jacobian with ones instead of v", _product_ignores_v("jvp")),
    Mutant("functional_hvp_ignores_v", ("FUNCTIONAL-3",), "torch.autograd.functional.hvp multiplies the Hessian with ones instead of v", _product_ignores_v("hvp")),
    Mutant("functional_vhp_ignores_v", ("FUNCTIONAL-3",), "torch.autograd.functional.vhp multiplies the Hessian with ones instead of v", _product_ignores_v("vhp")),
    Mutant("hessian_inner_gradient_detached", ("FUNCTIONAL-3",), "torch.autograd.functional.hessian builds the inner gradient without create_graph, so the outer jacobian sees it disconnected and returns zeros", _hessian_inner_gradient_detached),
    Mutant("functional_api_ignores_create_graph_false", ("FUNCTIONAL-4",), "jacobian, vjp and jvp build the graph of their results even with create_graph=False (results require grad)", _functional_api_ignores_create_graph_false),
    Mutant("func_grad_seeds_minus_one", ("FUNCTIONAL-5",), "torch.func.grad and grad_and_value seed the backward with -1: every gradient negated", _func_grad_seeds_minus_one),
    Mutant("func_vjp_ignores_the_cotangent", ("FUNCTIONAL-6",), "the function torch.func.vjp returns applies the Jacobian to ones instead of the cotangent", _func_vjp_ignores_the_cotangent),
    Mutant("func_jvp_ignores_the_tangents", ("FUNCTIONAL-6",), "torch.func.jvp multiplies the Jacobian with ones instead of the tangents", _func_jvp_ignores_the_tangents),
    Mutant("jacrev_puts_input_dims_first", ("FUNCTIONAL-7",), "torch.func.jacrev returns the Jacobian with the input dimensions before the output dimensions", _jacobian_transform_puts_input_dims_first("jacrev")),
    Mutant("jacfwd_puts_input_dims_first", ("FUNCTIONAL-7",), "torch.func.jacfwd returns the Jacobian with the input dimensions before the output dimensions (the tangents' batch dimension left in front)", _jacobian_transform_puts_input_dims_first("jacfwd")),
    Mutant("func_hessian_zero", ("FUNCTIONAL-7",), "torch.func.hessian returns zeros (the inner reverse pass not seen by the outer forward pass)", _func_hessian_zero),
    Mutant("vmap_ignores_out_dims", ("FUNCTIONAL-8",), "torch.func.vmap puts the mapped dimension first in the output whatever out_dims says", _vmap_ignores_out_dims),
    Mutant("functional_call_keeps_the_new_parameters", ("FUNCTIONAL-9",), "torch.func.functional_call leaves the given values in the module's parameters (the swap back is lost)", _functional_call_keeps_the_new_parameters),
    Mutant("functional_call_ignores_the_parameters", ("FUNCTIONAL-9",), "torch.func.functional_call runs the module with its own parameters, ignoring the dict", _functional_call_ignores_the_parameters),
    Mutant("func_grad_respects_an_outer_no_grad", ("FUNCTIONAL-10",), "torch.func.grad called under torch.no_grad() returns zeros: the outer grad mode stops the transform from recording", _func_grad_respects_an_outer_no_grad),
    Mutant("func_grad_ignores_an_inner_no_grad", ("FUNCTIONAL-10",), "torch.no_grad() inside a function torch.func.grad transforms leaves grad enabled: the part it computes is differentiated", _func_grad_ignores_an_inner_no_grad),
)
