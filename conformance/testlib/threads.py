"""Running parts of a user program on a few threads, with bounded joins (specs/threads.md).

:func:`run_in_threads` starts one thread per function behind a barrier (so they start together), joins each
with a timeout, and returns every thread's :class:`Outcome` (its value or the exception it raised), so a test
can check a thread's exception or re-raise it (:meth:`Outcome.get`).  A thread still running after the timeout
fails the test with the clause: a hang (a deadlock, backward calls serialized behind one another) costs at
most the timeout, never the suite.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .assertions import fail

__all__ = ["JOIN_TIMEOUT", "Outcome", "run_in_threads"]

#: seconds a test waits for each of its threads (they run tiny programs: milliseconds when nothing hangs)
JOIN_TIMEOUT = 30.0


@dataclass
class Outcome:
    """What one thread's function did: returned ``value``, or raised ``error``."""

    value: Any = None
    error: BaseException | None = None

    def get(self) -> Any:
        """The value; the thread's exception re-raised in the calling thread if it raised."""
        if self.error is not None:
            raise self.error
        return self.value


def run_in_threads(fns: Sequence[Callable[[], Any]], *, clause: str, what: str, timeout: float = JOIN_TIMEOUT) -> list[Outcome]:
    """Run each of ``fns`` on a thread of its own, all released together; each thread's :class:`Outcome`."""
    __tracebackhide__ = True
    outcomes = [Outcome() for _ in fns]
    barrier = threading.Barrier(len(fns))

    def target(index: int) -> None:
        try:
            barrier.wait(timeout)
            outcomes[index].value = fns[index]()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            outcomes[index].error = exc

    threads = [threading.Thread(target=target, args=(i,), name=f"conformance-{clause}-{i}", daemon=True) for i in range(len(fns))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    hung = [thread.name for thread in threads if thread.is_alive()]
    if hung:
        fail(clause, f"{what}: thread(s) {hung} still running after {timeout} s (a hang)")
    return outcomes
