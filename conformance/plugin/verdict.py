"""The end of a run: the JSON report, and the clause-by-clause verdict in the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ..reporting.report import build_report, clause_outcomes, tally, write_json_atomically
from ..reporting.report_io import BASIS_MEANINGS, counts_phrase, split_target, target_name
from .devices import status_in_run
from .distributed import is_xdist_worker
from .environment import collect_environment
from .known_failures import expectations_summary, stale_expectations
from .run_state import RunState


class ReportAndVerdict:
    def __init__(self, run: RunState) -> None:
        self.run = run

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        path = session.config.getoption("conformance_report")
        if is_xdist_worker(session.config):
            return  # the controller writes the one report of an xdist run (distributed.py)
        if exitstatus in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
            self.run.records.clear()  # the run never started: no report, no summary that reads as outcomes
            return
        if path and self.run.records:
            device_status = {name: status_in_run(name, self.run.explicit_devices) for name in self.run.devices}
            report = build_report(
                self.run.registry,
                self.run.records.values(),
                devices=self.run.devices,
                device_status=device_status,
                environment=_with_shard(
                    collect_environment(device_status, profile=self.run.profile, seed=self.run.seed),
                    session.config,
                ),
                exit_status=int(exitstatus),
                expectations=expectations_summary(self.run),
                modes=self.run.modes,
            )
            target = Path(path)
            if not target.is_absolute():
                target = session.config.invocation_params.dir / target
            write_json_atomically(target, report)
            self.run.report_path = target

    def pytest_terminal_summary(self, terminalreporter, config: pytest.Config) -> None:
        if not self.run.records:
            return
        outcomes = clause_outcomes(
            self.run.registry,
            self.run.records.values(),
            self.run.devices,
            torch_version=torch.__version__,
            device_status={name: status_in_run(name, self.run.explicit_devices) for name in self.run.devices},
            modes=self.run.modes,
        )
        write = terminalreporter.write_line
        terminalreporter.section("autograd conformance")
        for cid, per_device in outcomes.items():
            for device_name, result in per_device.items():
                if result["outcome"] == "known failure":
                    write(f"KNOWN FAILURE {cid} [{device_name}] {result['reason']}", yellow=True)
                if result["outcome"] == "failed":
                    clause = self.run.registry[cid]
                    first_line = (result["message"].strip().splitlines() or [""])[0]
                    remark = f" ({clause.basis}: {BASIS_MEANINGS[clause.basis]})" if clause.basis != "documented" else ""
                    write(
                        f"VIOLATED {cid} [{device_name}] {clause.title} ({clause.location}){remark}", red=True, bold=True
                    )
                    write(f"    {first_line}")
        for expectation, why in stale_expectations(self.run):
            write(f"STALE EXPECTATION {expectation.describe()}: {why}", yellow=True)
        uncited = [cid for cid in self.run.registry if cid not in self.run.citations]
        if uncited:
            listing = ", ".join(uncited) if len(uncited) <= 10 or config.option.verbose > 0 else "(-v lists them)"
            write(f"clauses cited by no collected test: {len(uncited)}: {listing}", yellow=True)
        write(f"clauses on torch {torch.__version__}:")
        verdicts = []
        for target in (target_name(d, m) for m in self.run.modes for d in self.run.devices):
            status = status_in_run(split_target(target)[0], self.run.explicit_devices)
            if not status.available:
                write(f"  {target}: skipped ({status.reason})", yellow=True)
                continue
            counts = tally(outcomes, target)
            failed = counts.get("failed", 0) > 0
            write(f"  {target}: {counts_phrase(counts)}", red=failed, green=not failed)
            verdicts.append((target, failed, counts.get("failed", 0)))
        if self.run.report_path is not None:
            write(f"report: {self.run.report_path} (python -m conformance summary {self.run.report_path})")
        violated = [f"{n} clause{'s' if n != 1 else ''} on {name}" for name, failed, n in verdicts if failed]
        tested_on = ", ".join(name for name, _, _ in verdicts) or "no device"
        if config.option.collectonly:
            write("no test ran (--collect-only): no verdict; the report lists the collected tests, each 'not run'")
            return
        if violated:
            write(f"VERDICT: torch {torch.__version__} VIOLATES the spec: {'; '.join(violated)}", red=True, bold=True)
        else:
            write(f"VERDICT: torch {torch.__version__} conforms on {tested_on}", green=True, bold=True)


def _with_shard(environment: dict, config: pytest.Config) -> dict:
    """A shard's report says which shard it is (``--shard I/N``, ``shards.py``), so that ``merge`` can tell a set
    of shard reports is complete; a run that is not sharded has no ``shard`` field."""
    value = config.getoption("shard", None)
    if value:
        from .shards import parse_shard

        shard = parse_shard(value)
        environment["shard"] = f"{shard.index}/{shard.count}"
    return environment
