"""Execution modes: eager, or the user program run through ``torch.compile`` with one backend.

A conformance test takes the ``mode`` fixture (a :class:`Mode`) beside ``device``
and passes the *user program* -- the code whose behaviour its clause states --
through it, in the forms users write::

    f = mode.compile(lambda x: x.sin() * 2)        # a compiled function
    with torch.no_grad():
        y = f(x)                                     # ... called under an ambient grad mode
    y = mode.run(program, x)                         # compile and call in one step
    net = mode.module(net)                           # a compiled nn.Module (torch.compile(module))

In eager mode each of these returns or calls the program unchanged, so a test
written once checks both.  Backward runs through the compiled outputs as a user's
would (``y.sum().backward()``); it is not itself compiled.

The plugin (``conformance/plugin/modes.py``) resets dynamo before each compiled
test and, after it, asks :func:`not_compiled_reason`: a compiled test that
compiled nothing, hit a graph break or fell back to eager (the recompile limit)
is reported ``not compiled``, never ``passed``.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Callable, TypeVar

__all__ = [
    "COMPILE_BACKENDS",
    "EAGER",
    "MODE_NAMES",
    "Mode",
    "keeping_graphs_allowed",
    "not_compiled_reason",
]

EAGER = "eager"
#: the torch.compile backends a compiled mode may name: ``compile:eager`` (dynamo only), ``compile:aot_eager``
#: (dynamo and AOTAutograd: the compiled backward), ``compile:inductor`` (generated kernels)
COMPILE_BACKENDS = ("eager", "aot_eager", "inductor")
MODE_NAMES = (EAGER,) + tuple(f"compile:{backend}" for backend in COMPILE_BACKENDS)

F = TypeVar("F", bound=Callable)


class _Ledger:
    """What compiled programs did since the plugin last reset it (one test)."""

    compiled = 0  # programs passed through Mode.compile
    raised = 0  # calls of compiled functions that raised (the program's own error, raised while dynamo traced it)


_LEDGER = _Ledger()


def reset_ledger() -> None:
    _LEDGER.compiled = _LEDGER.raised = 0


@dataclass(frozen=True)
class Mode:
    """One execution mode: ``eager`` or ``compile:BACKEND``."""

    name: str = EAGER

    def __post_init__(self) -> None:
        if self.name not in MODE_NAMES:
            raise ValueError(f"unknown mode {self.name!r}; known: {', '.join(MODE_NAMES)}")

    @property
    def compiled(self) -> bool:
        return self.name != EAGER

    @property
    def backend(self) -> str | None:
        """The torch.compile backend (``"aot_eager"``), None when eager."""
        return self.name.partition(":")[2] or None

    def compile(self, fn: F, **options) -> F:
        """``fn`` itself when eager, else ``torch.compile(fn, backend=..., **options)``.

        A compiled function (not a module) is wrapped to count the calls that raise: a program that raises its
        own error (an in-place change of a leaf, say) raises it while dynamo traces it, and dynamo counts that
        frame as not compiled; :func:`not_compiled_reason` discounts those frames.
        """
        if not self.compiled:
            return fn
        import torch

        _LEDGER.compiled += 1
        compiled = torch.compile(fn, backend=self.backend, **options)
        if isinstance(fn, torch.nn.Module):
            return compiled

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return compiled(*args, **kwargs)
            except Exception:
                _LEDGER.raised += 1
                raise

        return call

    def run(self, fn: Callable, *args, **kwargs):
        """Call ``fn(*args, **kwargs)``, compiled in a compiled mode."""
        return self.compile(fn)(*args, **kwargs)

    def module(self, module):
        """``module`` itself when eager, else ``torch.compile(module, backend=...)`` (an ``OptimizedModule``
        sharing the module's parameters, buffers and hooks)."""
        return self.compile(module)

    def __str__(self) -> str:
        return self.name


@contextlib.contextmanager
def keeping_graphs_allowed(mode: Mode):
    """In a compiled ``mode``, AOTAutograd's donated buffers off for the block (eager: nothing changes).

    With donated buffers (torch >= 2.6's default), a ``retain_graph=True`` or ``create_graph=True`` pass through
    a compiled function raises whenever the program's backward may overwrite a saved intermediate, which
    depends on the drawn program and on the passes before (a torch defect, pinned with torch's defaults by
    ``test_keeping_the_graph_after_a_pass_without_it`` and listed in the expectations file).  The tests of
    random programs that keep graphs use this, so that they check the rest of their clause on every program.
    """
    if not mode.compiled:
        yield
        return
    import torch._functorch.config as functorch_config

    if not hasattr(functorch_config, "donated_buffer"):  # before torch 2.6: no donated buffers
        yield
        return
    with functorch_config.patch(donated_buffer=False):
        yield


def not_compiled_reason(counters) -> str | None:
    """Why the programs a compiled test ran were not compiled whole, from dynamo's ``counters``, or None.

    * nothing was compiled: the test passed no program through :class:`Mode`;
    * a graph break: part of the program ran eagerly, between compiled graphs;
    * a frame dynamo gave up on (recompile limit, an unsupported construct outside ``fullgraph``): it ran
      eagerly, as a whole.
    """
    if _LEDGER.compiled == 0:
        return "the test compiled no program in this mode (its user program does not go through the mode)"
    breaks = counters.get("graph_break") or {}
    if breaks:
        reason, _ = max(breaks.items(), key=lambda item: item[1])
        return f"graph break ({sum(breaks.values())} in all): {_first_line(reason)}"
    frames = counters.get("frames") or {}
    not_ok = frames.get("total", 0) - frames.get("ok", 0)
    if not_ok > _LEDGER.raised:  # frames that raised the program's own error are not fallbacks
        unimplemented = counters.get("unimplemented") or {}
        why = _first_line(next(iter(unimplemented), "")) or "no reason recorded"
        return f"dynamo ran {not_ok - _LEDGER.raised} frame(s) eagerly: {why}"
    if not frames.get("ok") and not _LEDGER.raised:
        return "dynamo compiled no frame (the compiled programs were never called)"
    return None


def _first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""
