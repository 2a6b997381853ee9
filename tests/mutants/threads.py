"""Mutants of the threads clauses (specs/threads.md): each breaks one behaviour the way a regression would.

Each wraps ``torch.autograd.backward`` (which ``Tensor.backward`` calls) and/or ``torch.autograd.grad`` and
changes what a call from a thread other than the main one does; the main thread (the tests' single-threaded
references) is left alone.
"""

from __future__ import annotations

import inspect
import threading

import torch

from conformance.testlib.graphs import recorded_leaves
from tests.mutants.base import Mutant


def _in_worker_thread() -> bool:
    return threading.current_thread() is not threading.main_thread()


def _as_list(tensors) -> list:
    return [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)


def _wrap(mp, name: str, change) -> None:
    """Replace ``torch.autograd.<name>`` by a wrapper that, in a worker thread, calls ``change(bound, original)``
    with the call's bound arguments (``inspect.BoundArguments``, defaults applied) instead of ``original``."""
    original = getattr(torch.autograd, name)
    signature = inspect.signature(original)

    def wrapper(*args, **kwargs):
        if not _in_worker_thread():
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return change(bound, original)

    mp.setattr(torch.autograd, name, wrapper)


def _call(original, bound):
    return original(*bound.args, **bound.kwargs)


def _worker_threads_run_no_backward(mp):
    def backward(bound, original):
        return None  # nothing runs: the leaves' .grad stay as they were

    def grad(bound, original):
        return tuple(torch.zeros_like(t) for t in _as_list(bound.arguments["inputs"]))

    _wrap(mp, "backward", backward)
    _wrap(mp, "grad", grad)


_ENGINE_LOCK = threading.RLock()


def _backward_calls_serialized(mp):
    for name in ("backward", "grad"):
        original = getattr(torch.autograd, name)

        def serialized(*args, __original=original, **kwargs):
            with _ENGINE_LOCK:  # one backward pass at a time, process-wide
                return __original(*args, **kwargs)

        mp.setattr(torch.autograd, name, serialized)


def _grad_in_worker_threads_accumulates(mp):
    def grad(bound, original):
        result = _call(original, bound)
        for tensor, g in zip(_as_list(bound.arguments["inputs"]), result):
            if g is not None and tensor.is_leaf:
                tensor.grad = g.detach().clone() if tensor.grad is None else tensor.grad + g.detach()
        return result

    _wrap(mp, "grad", grad)


def _worker_thread_backward_overwrites_grads(mp):
    def backward(bound, original):
        for root in _as_list(bound.arguments["tensors"]):
            for leaf in recorded_leaves(root):
                leaf.grad = None  # as if AccumulateGrad replaced .grad instead of adding to it
        return _call(original, bound)

    _wrap(mp, "backward", backward)


def _worker_threads_never_free_the_graph(mp):
    def keep(bound, original):
        bound.arguments["retain_graph"] = True
        return _call(original, bound)

    _wrap(mp, "backward", keep)
    _wrap(mp, "grad", keep)


MUTANTS = (
    Mutant(
        "worker_threads_run_no_backward",
        ("THREAD-1",),
        "backward() or grad() called from a thread other than the main one runs nothing (no ready queue for a thread the engine has not seen): .grad stays unset, grad() returns zeros",
        _worker_threads_run_no_backward,
    ),
    Mutant(
        "backward_calls_serialized",
        ("THREAD-2",),
        "every backward() and grad() call holds one process-wide lock, so backward passes in threads run one after another (the behaviour before PyTorch 1.6)",
        _backward_calls_serialized,
    ),
    Mutant(
        "grad_in_worker_threads_accumulates",
        ("THREAD-3",),
        "torch.autograd.grad called from a worker thread also accumulates its results into the inputs' .grad",
        _grad_in_worker_threads_accumulates,
    ),
    Mutant(
        "worker_thread_backward_overwrites_grads",
        ("THREAD-4",),
        "backward() from a worker thread replaces the leaves' .grad instead of accumulating into it, so concurrent passes on shared leaves lose all but the last",
        _worker_thread_backward_overwrites_grads,
    ),
    Mutant(
        "worker_threads_never_free_the_graph",
        ("THREAD-5",),
        "backward() and grad() from a worker thread always retain the graph, so a graph shared between threads is never freed and a later pass through it does not raise",
        _worker_threads_never_free_the_graph,
    ),
)
