"""Mutants of hooks clauses (HOOK-N, specs/hooks.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import collections

import torch

from tests.mutants.base import Mutant


def _deprecated_backward_hook_warns_user_warning(mp):
    """The pre-2.4 category (HOOK-14) on a torch where HOOK-13 applies."""
    import types

    import torch.nn.modules.module as module_py

    real = module_py.warnings

    def warn(message, category=None, *args, **kwargs):
        if category is FutureWarning and "non-full backward hook" in str(message):
            category = UserWarning
        return real.warn(message, category, *args, **kwargs)

    shim = types.SimpleNamespace(**{name: getattr(real, name) for name in dir(real) if not name.startswith("__")})
    shim.warn = warn
    mp.setattr(module_py, "warnings", shim)


def _tensor_hook_return_ignored(mp):
    original = torch.Tensor.register_hook

    def register_hook(self, hook):
        return original(self, lambda grad: (hook(grad), None)[1])  # the hook runs, its result is dropped

    mp.setattr(torch.Tensor, "register_hook", register_hook)


def _hook_handle_remove_does_nothing(mp):
    mp.setattr(torch.utils.hooks.RemovableHandle, "remove", lambda self: None)


def _forward_hook_return_ignored(mp):
    original = torch.nn.Module.register_forward_hook

    def register_forward_hook(self, hook, **kwargs):
        return original(self, lambda *args: (hook(*args), None)[1], **kwargs)  # the output is never replaced

    mp.setattr(torch.nn.Module, "register_forward_hook", register_forward_hook)


def _full_backward_hook_return_only_reaches_leaf_inputs(mp):
    original = torch.nn.Module.register_full_backward_hook

    def register_full_backward_hook(self, hook, **kwargs):
        inputs_are_leaves = []

        def record(module, args):
            inputs_are_leaves.append(all(a.is_leaf for a in args if isinstance(a, torch.Tensor)))

        self.register_forward_pre_hook(record)

        def replacing_only_for_leaves(module, grad_input, grad_output):
            result = hook(module, grad_input, grad_output)
            return result if inputs_are_leaves[-1] else None  # lost upstream of a non-leaf input

        return original(self, replacing_only_for_leaves, **kwargs)

    mp.setattr(torch.nn.Module, "register_full_backward_hook", register_full_backward_hook)



def _unregistered_handle():
    """A handle whose hook was never registered anywhere."""
    return torch.utils.hooks.RemovableHandle(collections.OrderedDict())


def _tensor_hook_on_a_leaf_never_called(mp):
    original = torch.Tensor.register_hook

    def register_hook(self, hook):
        if self.is_leaf and self.requires_grad:
            return _unregistered_handle()  # accepted, but never attached to the accumulation node
        return original(self, hook)

    mp.setattr(torch.Tensor, "register_hook", register_hook)


def _register_hook_allowed_on_integer_tensors(mp):
    original = torch.Tensor.register_hook

    def register_hook(self, hook):
        if not (self.is_floating_point() or self.is_complex()):
            return _unregistered_handle()  # no error for a tensor that can never require grad
        return original(self, hook)

    mp.setattr(torch.Tensor, "register_hook", register_hook)


def _forward_hook_receives_detached_inputs(mp):
    original = torch.nn.Module.register_forward_hook

    def register_forward_hook(self, hook, **kwargs):
        def with_detached_args(module, args, *rest):
            args = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
            return hook(module, args, *rest)

        return original(self, with_detached_args, **kwargs)

    mp.setattr(torch.nn.Module, "register_forward_hook", register_forward_hook)


def _forward_pre_hook_single_value_ignored(mp):
    original = torch.nn.Module.register_forward_pre_hook

    def register_forward_pre_hook(self, hook, **kwargs):
        def tuples_only(module, *rest):
            result = hook(module, *rest)
            return result if isinstance(result, tuple) else None  # a bare value is dropped instead of wrapped

        return original(self, tuples_only, **kwargs)

    mp.setattr(torch.nn.Module, "register_forward_pre_hook", register_forward_pre_hook)


def _full_backward_hook_breaks_when_first_input_does_not_require_grad(mp):
    original = torch.nn.Module.register_full_backward_hook

    def register_full_backward_hook(self, hook, **kwargs):
        def check(module, args):
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            if tensors and not tensors[0].requires_grad and any(t.requires_grad for t in tensors[1:]):
                raise AttributeError("'NoneType' object has no attribute 'name'")  # torch 1.8.1's message

        self.register_forward_pre_hook(check)
        return original(self, hook, **kwargs)

    mp.setattr(torch.nn.Module, "register_full_backward_hook", register_full_backward_hook)


def _full_backward_hook_not_called_without_inputs_requiring_grad(mp):
    original = torch.nn.Module.register_full_backward_hook

    def register_full_backward_hook(self, hook, **kwargs):
        any_input_requires_grad = []

        def record(module, args):
            any_input_requires_grad.append(any(a.requires_grad for a in args if isinstance(a, torch.Tensor)))

        self.register_forward_pre_hook(record)

        def only_with_inputs_requiring_grad(module, grad_input, grad_output):
            if any_input_requires_grad[-1]:
                return hook(module, grad_input, grad_output)
            return None

        return original(self, only_with_inputs_requiring_grad, **kwargs)

    mp.setattr(torch.nn.Module, "register_full_backward_hook", register_full_backward_hook)


def _deprecated_backward_hook_warns_on_every_module(mp):
    import warnings

    original = torch.nn.Module.register_backward_hook

    def register_backward_hook(self, hook):
        def warn(module, args, output):
            warnings.warn(
                "Using a non-full backward hook when the forward contains multiple autograd Nodes is deprecated and will be "
                "removed in future versions. Please use register_full_backward_hook to get the documented behavior.",
                FutureWarning,
                stacklevel=2,
            )

        self.register_forward_hook(warn)  # even a single-operation module warns
        return original(self, hook)

    mp.setattr(torch.nn.Module, "register_backward_hook", register_backward_hook)


MUTANTS = (
    Mutant("deprecated_backward_hook_warns_user_warning", ("HOOK-13",), "register_backward_hook's deprecation warning is a UserWarning again (the pre-2.4 category)", _deprecated_backward_hook_warns_user_warning),
    Mutant("tensor_hook_return_ignored", ("HOOK-2", "HOOK-3"), "Tensor.register_hook ignores the hook's return value", _tensor_hook_return_ignored),
    Mutant("hook_handle_remove_does_nothing", ("HOOK-5",), "RemovableHandle.remove() leaves the hook registered", _hook_handle_remove_does_nothing),
    Mutant("forward_hook_return_ignored", ("HOOK-7",), "a forward hook's return value does not replace the module's output", _forward_hook_return_ignored),
    Mutant(
        "full_backward_hook_return_only_reaches_leaf_inputs",
        ("HOOK-10",),
        "a full backward hook's returned grad_input is used when the module's inputs are leaves, dropped when they are computed upstream",
        _full_backward_hook_return_only_reaches_leaf_inputs,
    ),
    Mutant("tensor_hook_on_a_leaf_never_called", ("HOOK-1",), "Tensor.register_hook on a leaf returns a handle but the hook is never called", _tensor_hook_on_a_leaf_never_called),
    Mutant("register_hook_allowed_on_integer_tensors", ("HOOK-4",), "Tensor.register_hook on an integer or bool tensor returns a handle instead of raising", _register_hook_allowed_on_integer_tensors),
    Mutant("forward_hook_receives_detached_inputs", ("HOOK-6",), "a forward hook receives detached copies of the positional inputs instead of the objects passed", _forward_hook_receives_detached_inputs),
    Mutant("forward_pre_hook_single_value_ignored", ("HOOK-8",), "a forward pre-hook returning a single value that is not a tuple leaves the inputs unchanged", _forward_pre_hook_single_value_ignored),
    Mutant(
        "full_backward_hook_breaks_when_first_input_does_not_require_grad",
        ("HOOK-9",),
        "calling a module with a full backward hook raises AttributeError when its first tensor input does not require grad and another does (torch 1.8.1)",
        _full_backward_hook_breaks_when_first_input_does_not_require_grad,
        regression="https://github.com/pytorch/pytorch/issues/57944",
    ),
    Mutant(
        "full_backward_hook_not_called_without_inputs_requiring_grad",
        ("HOOK-11",),
        "a full backward hook is not called when no input of the module requires grad (torch 1.8)",
        _full_backward_hook_not_called_without_inputs_requiring_grad,
        regression="https://github.com/pytorch/pytorch/issues/56380",
    ),
    Mutant("deprecated_backward_hook_warns_on_every_module", ("HOOK-12",), "register_backward_hook's deprecation warning is emitted by single-operation modules too", _deprecated_backward_hook_warns_on_every_module),
)


# ----------------------------------------------------------------------------- backward hooks execution (HOOK-15..23)


def _retain_grad_is_an_ordinary_tensor_hook(mp):
    """torch 1.13's retain_grad(): a tensor hook like any other, run in registration order with the user's."""
    import weakref

    register_hook = torch.Tensor.register_hook

    def retain_grad(self):
        if self.is_leaf or getattr(self, "_mutant_retained", False):
            return
        self._mutant_retained = True
        ref = weakref.ref(self)

        def keep(grad):
            t = ref()
            if t is not None:
                t.grad = grad.detach().clone()

        register_hook(self, keep)

    mp.setattr(torch.Tensor, "retain_grad", retain_grad)


def _post_accumulate_grad_hook_runs_before_accumulation(mp):
    register_hook = torch.Tensor.register_hook

    def register_post_accumulate_grad_hook(self, hook):
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        return register_hook(self, lambda grad: (hook(self), None)[1])  # called with the gradient, before .grad is updated

    mp.setattr(torch.Tensor, "register_post_accumulate_grad_hook", register_post_accumulate_grad_hook)


def _autograd_grad_runs_the_nodes_of_its_inputs(mp):
    original = torch.autograd.grad

    def leaves_behind(outputs):
        found, seen, stack = [], set(), [o.grad_fn for o in outputs]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            if hasattr(node, "variable"):
                found.append(node.variable)
            stack.extend(n for n, _ in node.next_functions)
        return found

    def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True, allow_unused=None, **kwargs):
        outs = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
        ins = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
        extra = tuple(leaf for leaf in leaves_behind(outs) if all(leaf is not i for i in ins))
        result = original(outputs, ins + extra, grad_outputs, retain_graph=retain_graph, create_graph=create_graph, allow_unused=True, **kwargs)
        return result[: len(ins)]  # the engine ran every node down to the leaves, the inputs' own included

    mp.setattr(torch.autograd, "grad", grad)


def _tensor_hooks_stay_with_the_first_grad_fn(mp):
    """torch 1.13: hooks registered after an in-place change still go to the grad_fn the tensor had at its first hook."""
    register_hook = torch.Tensor.register_hook

    def register(self, hook):
        if self.grad_fn is None:
            return register_hook(self, hook)
        first = self.__dict__.setdefault("_mutant_first_grad_fn", self.grad_fn)
        if first is self.grad_fn:
            return register_hook(self, hook)
        nr = self.output_nr

        def on_the_old_node(grad_outputs):
            result = hook(grad_outputs[nr])
            return None if result is None else grad_outputs[:nr] + (result,) + grad_outputs[nr + 1 :]

        return first.register_prehook(on_the_old_node)

    mp.setattr(torch.Tensor, "register_hook", register)


def _multi_grad_hook_all_fires_at_the_first_gradient(mp):
    import torch.autograd.graph as graph

    original = graph.register_multi_grad_hook

    def register_multi_grad_hook(tensors, fn, *, mode="all"):
        if mode != "all":
            return original(tensors, fn, mode=mode)
        tensors = list(tensors)
        fired = []

        def inner(k):
            def hook(grad):
                if not fired:
                    fired.append(k)
                    fn([grad if j == k else None for j in range(len(tensors))])

            return hook

        handles = [t.register_hook(inner(k)) for k, t in enumerate(tensors)]
        return handles[0]

    mp.setattr(graph, "register_multi_grad_hook", register_multi_grad_hook)


def _multi_grad_hook_any_fires_at_the_last_gradient(mp):
    import torch.autograd.graph as graph

    original = graph.register_multi_grad_hook

    def register_multi_grad_hook(tensors, fn, *, mode="all"):
        if mode != "any":
            return original(tensors, fn, mode=mode)
        return original(tensors, lambda grads: fn(next(g for g in grads if g is not None)), mode="all")

    mp.setattr(graph, "register_multi_grad_hook", register_multi_grad_hook)


def _full_backward_pre_hook_return_ignored(mp):
    original = torch.nn.Module.register_full_backward_pre_hook

    def register_full_backward_pre_hook(self, hook, **kwargs):
        return original(self, lambda module, grad_output: (hook(module, grad_output), None)[1], **kwargs)

    mp.setattr(torch.nn.Module, "register_full_backward_pre_hook", register_full_backward_pre_hook)


def _forward_hook_prepend_ignored(mp):
    original = torch.nn.Module.register_forward_hook

    def register_forward_hook(self, hook, *, prepend=False, **kwargs):
        return original(self, hook, **kwargs)  # always appended

    mp.setattr(torch.nn.Module, "register_forward_hook", register_forward_hook)


def _forward_hook_always_call_ignored(mp):
    original = torch.nn.Module.register_forward_hook

    def register_forward_hook(self, hook, *, always_call=False, **kwargs):
        return original(self, hook, **kwargs)  # skipped when forward raises

    mp.setattr(torch.nn.Module, "register_forward_hook", register_forward_hook)


MUTANTS = MUTANTS + (
    Mutant(
        "retain_grad_is_an_ordinary_tensor_hook",
        ("HOOK-15",),
        "retain_grad() registers an ordinary tensor hook, run in registration order with the user's hooks (torch 1.13)",
        _retain_grad_is_an_ordinary_tensor_hook,
    ),
    Mutant(
        "post_accumulate_grad_hook_runs_before_accumulation",
        ("HOOK-16",),
        "a post-accumulate-grad hook runs as a tensor hook, before the leaf's .grad is updated",
        _post_accumulate_grad_hook_runs_before_accumulation,
    ),
    Mutant(
        "autograd_grad_runs_the_nodes_of_its_inputs",
        ("HOOK-17",),
        "torch.autograd.grad executes the whole graph down to the leaves, the grad_fn of its inputs included",
        _autograd_grad_runs_the_nodes_of_its_inputs,
    ),
    Mutant(
        "tensor_hooks_stay_with_the_first_grad_fn",
        ("HOOK-18",),
        "a tensor hook registered after an in-place change goes to the grad_fn the tensor had at its first hook (torch 1.13)",
        _tensor_hooks_stay_with_the_first_grad_fn,
    ),
    Mutant(
        "multi_grad_hook_all_fires_at_the_first_gradient",
        ("HOOK-19",),
        "register_multi_grad_hook (mode='all') calls its hook at the first gradient, with None for the others",
        _multi_grad_hook_all_fires_at_the_first_gradient,
    ),
    Mutant(
        "multi_grad_hook_any_fires_at_the_last_gradient",
        ("HOOK-20",),
        "register_multi_grad_hook(mode='any') waits for every gradient before calling its hook",
        _multi_grad_hook_any_fires_at_the_last_gradient,
    ),
    Mutant(
        "full_backward_pre_hook_return_ignored",
        ("HOOK-21",),
        "the gradients a full backward pre-hook returns do not replace grad_output",
        _full_backward_pre_hook_return_ignored,
    ),
    Mutant("forward_hook_prepend_ignored", ("HOOK-22",), "register_forward_hook(prepend=True) appends the hook", _forward_hook_prepend_ignored),
    Mutant(
        "forward_hook_always_call_ignored",
        ("HOOK-23",),
        "register_forward_hook(always_call=True) hooks are skipped when forward raises",
        _forward_hook_always_call_ignored,
    ),
)
