"""Runs on pytest-xdist: one report from many processes, and a crashed test recorded as a failure of its clauses.

Under ``pytest -n N`` the controller process collects nothing and runs nothing:
the workers do, and xdist forwards each test's reports to the controller.  The
report, the terminal section and the verdict are the controller's alone
(``verdict.py`` writes nothing in a worker), built from:

* what collection learnt (each conformance test and its clauses, device and
  mode; the tests citing each clause; the tests each expectation marks), which
  every worker sends once, at the end of its session, in xdist's
  ``workeroutput`` (:meth:`RunState.collected`); every worker collects the same
  tests, so the controller adopts the first copy that arrives and replays the
  test reports that came before it;
* the test reports xdist forwards, recorded as in a serial run (``recording.py``).

An interrupted run (Ctrl-C, a timeout's SIGINT) can end its workers before they
send anything (one inside torch code when the signal comes does not finish its
session): each worker therefore also writes what it collected to a file
in a directory the controller hands out, which the controller reads when no
worker finished, so the tests that ran are reported and the others are "not
run".

A test that kills its worker (an abort, a segfault: a young vendor backend, a
compiler crash) gets a failure report from xdist ("worker 'gw0' crashed while
running ..."), and xdist starts a new worker (``--max-worker-restart``) so the
run goes on.  To say *why* the worker died, each worker points Python's
``faulthandler`` at a file of its own in a directory the controller hands out;
the controller adds the fatal error it finds there ("Fatal Python error:
Aborted", with the test's innermost frame) to the crash report, so the report
and the terminal give the crash reason.  A serial run has no such isolation: a
crash ends the process (README, "Parallel runs, crashes, shards and replays").
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from .recording import OutcomeRecorder
from .run_state import RunState

__all__ = ["XdistGathering", "crash_reason", "is_xdist_worker"]

#: the key of the plugin's data in xdist's ``workerinput`` / ``workeroutput``
WORKER_KEY = "autograd_conformance"
_CRASH_DIR_KEY = "autograd_conformance_crash_dir"


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def crash_reason(faulthandler_text: str) -> str:
    """One line from what ``faulthandler`` wrote when a process died: the fatal error and the innermost frame."""
    lines = [line.strip() for line in faulthandler_text.splitlines() if line.strip()]
    fatal = next((line for line in lines if line.startswith("Fatal Python error")), None)
    if fatal is None:
        return ""
    # all threads are dumped: the one that died is the "Current thread"; its innermost frame comes first
    current = next((i for i, line in enumerate(lines) if line.startswith("Current thread")), 0)
    frame = next((line for line in lines[current:] if line.startswith("File ")), None)
    match = re.match(r'File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)', frame or "")
    if match:
        return f"{fatal} (in {match['func']} at {Path(match['file']).name}:{match['line']})"
    return fatal


class XdistGathering:
    """The plugin's part for xdist: workers send what they collected; the controller gathers the outcomes."""

    def __init__(self, run: RunState, recorder: OutcomeRecorder, config: pytest.Config) -> None:
        self.run = run
        self.worker = is_xdist_worker(config)
        self.recorder = recorder
        self.adopted = False
        self.controller = False  # known at session start
        self.waiting: list[pytest.TestReport] = []  # reports that reached the controller before the collection did
        self.crash_dir: str | None = None
        self.crash_reasons: dict[str, str] = {}  # worker id -> why its last process died
        self._crash_log = None

    # ------------------------------------------------------------------ worker side

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """Controller: give each worker a file for its fatal errors."""
        if self.crash_dir is None:
            self.crash_dir = tempfile.mkdtemp(prefix="conformance-crashes-")
        node.workerinput[_CRASH_DIR_KEY] = self.crash_dir

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        config = session.config
        # xdist's controller: it registers its scheduling session ("dsession") when it is one
        self.controller = not self.worker and config.pluginmanager.has_plugin("dsession")
        crash_dir = getattr(config, "workerinput", {}).get(_CRASH_DIR_KEY)
        if crash_dir:
            worker = config.workerinput.get("workerid", "gw")
            self._crash_log = open(Path(crash_dir) / f"{worker}-{os.getpid()}.log", "w")  # noqa: SIM115 (open until exit)
            faulthandler.enable(file=self._crash_log)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.worker:
            collected = self.run.collected()
            session.config.workeroutput[WORKER_KEY] = collected
            crash_dir = session.config.workerinput.get(_CRASH_DIR_KEY)
            if crash_dir:  # for a controller whose workers never finish (an interrupted run): see pytest_sessionfinish
                worker = session.config.workerinput.get("workerid", "gw")
                partial = Path(crash_dir) / f".collected-{worker}-{os.getpid()}.json"
                partial.write_text(json.dumps(collected), encoding="utf-8")
                partial.rename(Path(crash_dir) / f"collected-{worker}-{os.getpid()}.json")

    # ------------------------------------------------------------------ controller side

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        if error is not None:
            self.crash_reasons[node.gateway.id] = self._read_crash_log(node.gateway.id) or str(error)
        collected = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if collected is not None and not self.adopted:
            self.run.adopt_collected(collected)
            self.adopted = True
            waiting, self.waiting = self.waiting, []
            for report in waiting:
                self.recorder.pytest_runtest_logreport(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        worker = getattr(report, "node", None)
        if report.when == "???" and worker is not None:  # xdist's report of the test that crashed its worker
            why = self.crash_reasons.get(worker.gateway.id)
            if why:
                report.longrepr = f"{report.longrepr}: {why}"
        if not self.controller or self.adopted:
            return
        if report.nodeid not in self.run.records:
            self.waiting.append(report)

    @pytest.hookimpl(tryfirst=True)  # before verdict.py writes the report
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.waiting and not self.adopted:
            # no worker finished its session (the run was interrupted: Ctrl-C, a timeout): take the collection a
            # worker wrote when it collected, so the tests that ran are reported and the others are "not run"
            collected = self._read_collected()
            if collected is not None:
                self.run.adopt_collected(collected)
                self.adopted = True
                waiting, self.waiting = self.waiting, []
                for report in waiting:
                    self.recorder.pytest_runtest_logreport(report)
                session.config.get_terminal_writer().line(
                    f"autograd-conformance: no worker finished its session (interrupted?); the report holds the "
                    f"{len(waiting)} test reports that arrived, and the other tests as not run",
                    yellow=True,
                )
            else:
                session.config.get_terminal_writer().line(
                    f"autograd-conformance: no worker finished its session, so {len(self.waiting)} test reports have no "
                    "clause to go to and the run has no report",
                    yellow=True,
                )
        if self.crash_dir is not None:
            shutil.rmtree(self.crash_dir, ignore_errors=True)

    def _read_collected(self) -> dict | None:
        """What a worker collected, from the file it wrote at the end of its collection (None if none did)."""
        if self.crash_dir is None:
            return None
        for path in sorted(Path(self.crash_dir).glob("collected-*.json")):
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
        return None

    def _read_crash_log(self, worker: str) -> str:
        if self.crash_dir is None:
            return ""
        reasons = []
        for path in sorted(Path(self.crash_dir).glob(f"{worker}-*.log")):
            text = path.read_text(errors="replace")
            path.unlink()  # a restarted worker writes a file of its own
            reason = crash_reason(text)
            if reason:
                reasons.append(reason)
        return "; ".join(reasons)
