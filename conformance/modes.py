"""The documented forms of entering a grad mode, as interchangeable runners.

``NO_GRAD["decorator"](fn)`` calls ``fn()`` inside ``@torch.no_grad()``, and so
on; tests are parametrized over a table's keys so each documented form is
checked.  torch's API is looked up when a runner is called, never bound at
import, so the torch under test is the one that runs.
"""

from __future__ import annotations

from typing import Callable, Dict, TypeVar

import torch

__all__ = ["ENABLE_GRAD", "INFERENCE_MODE", "NO_GRAD", "NO_GRAD_DECORATORS", "SET_GRAD_DISABLED", "Runner"]

R = TypeVar("R")
Runner = Callable[[Callable[[], R]], R]


def _as_context(make: Callable[[], object]) -> Runner:
    def run(fn):
        with make():
            return fn()

    return run


def _as_decorator(make: Callable[[], Callable]) -> Runner:
    def run(fn):
        return make()(fn)()

    return run


NO_GRAD: Dict[str, Runner] = {
    "context manager": _as_context(lambda: torch.no_grad()),
    "decorator": _as_decorator(lambda: torch.no_grad()),
}

#: the documented spellings of no_grad as a decorator: name -> make() returning the decorator
#: (for what a runner cannot express, such as decorating a generator function)
NO_GRAD_DECORATORS: Dict[str, Callable[[], Callable]] = {
    "@torch.no_grad()": lambda: torch.no_grad(),
}

ENABLE_GRAD: Dict[str, Runner] = {
    "context manager": _as_context(lambda: torch.enable_grad()),
    "decorator": _as_decorator(lambda: torch.enable_grad()),
}

INFERENCE_MODE: Dict[str, Runner] = {
    "context manager": _as_context(lambda: torch.inference_mode()),
    "decorator": _as_decorator(lambda: torch.inference_mode()),
}


def _set_grad_disabled_as_function(fn):
    previous = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        return fn()
    finally:
        torch.set_grad_enabled(previous)


SET_GRAD_DISABLED: Dict[str, Runner] = {
    "context manager": _as_context(lambda: torch.set_grad_enabled(False)),
    "function": _set_grad_disabled_as_function,
}
