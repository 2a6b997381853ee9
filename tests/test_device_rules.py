"""Declared device rules (conformance/plugin/__init__.py): tests that check nothing on some device kinds.

``@pytest.mark.devices(...)`` and ``@pytest.mark.needs_other_device(...)`` are
turned into skips at collection, with a reason that says the test was not
exercised on that device, so the report never counts a no-op as a pass.  The
``meta`` device stands in for a non-CPU device kind: torch has it on every
build, and the plugin's device probe accepts it (allocating on it works).
"""

from __future__ import annotations

import json

import pytest

from conformance.plugin.profiles import ENV_VAR
from tests.test_plugin import Suite, clause_md

NEEDS_OTHER_DEVICE = """
PARAMS = [
    "y.double()",
    pytest.param("y.to(other device)", marks=pytest.mark.needs_other_device("y.to(other device) is a no-op here")),
]

@pytest.mark.spec("PASS-1")
@pytest.mark.parametrize("transfer", PARAMS)
def test_transfer(device, transfer):
    y = torch.ones(2, device=device)
    assert transfer != "y.to(other device)" or y.device.type != "cpu", "ran where the move is a no-op"
"""

DEVICE_KINDS = """
@pytest.mark.spec("PASS-1")
@pytest.mark.devices("cuda", reason="PASS-1 is about CUDA tensors")
def test_only_cuda(device):
    assert torch.device(device).type == "cuda"

@pytest.mark.spec("DEVICE-1")
@pytest.mark.devices("non-cpu")
def test_not_on_the_cpu(device):
    assert torch.device(device).type != "cpu"
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Suite:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("CI", raising=False)
    suite = Suite(pytester)
    suite.write_specs(clause_md("PASS-1", "holds"), clause_md("DEVICE-1", "about non-CPU tensors"))
    return suite


def _records(suite: Suite) -> dict:
    report = json.loads((suite.pytester.path / "out.json").read_text(encoding="utf-8"))
    return {c["id"]: c["devices"] for c in report["clauses"]}


def test_a_form_needing_another_device_is_skipped_on_the_cpu_with_a_reason(suite):
    suite.write_tests(NEEDS_OTHER_DEVICE)
    result = suite.run("--device", "cpu", "--conformance-report=out.json")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*not exercised on cpu: needs a second device kind (y.to(other device) is a no-op here)*"])


def test_a_form_needing_another_device_runs_on_a_non_cpu_device(suite):
    suite.write_tests(NEEDS_OTHER_DEVICE)
    result = suite.run("--device", "meta")
    result.assert_outcomes(passed=2)


def test_device_kind_rules_skip_other_kinds_at_collection_with_a_reason(suite):
    suite.write_tests(DEVICE_KINDS)
    result = suite.run("--device", "cpu", "--conformance-report=out.json")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*not exercised on cpu: only on cuda devices (PASS-1 is about CUDA tensors)*",
            "*not exercised on cpu: only on non-cpu devices*",
        ]
    )
    cpu = _records(suite)["DEVICE-1"]["cpu"]
    assert cpu["outcome"] == "skipped"
    assert "not exercised on cpu" in json.dumps(cpu)


def test_a_non_cpu_rule_runs_on_any_non_cpu_device_kind(suite):
    """A device kind the rules never heard of (here meta) runs every "non-cpu" test; "cuda" stays cuda-only."""
    suite.write_tests(DEVICE_KINDS)
    result = suite.run("--device", "meta", "--conformance-report=out.json")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*not exercised on meta: only on cuda devices*"])
    assert _records(suite)["DEVICE-1"]["meta"]["outcome"] == "passed"


def test_a_devices_rule_naming_no_kind_is_a_usage_error(suite):
    suite.write_tests(
        """
        @pytest.mark.spec("PASS-1")
        @pytest.mark.devices()
        def test_nowhere(device):
            pass
        """
    )
    result = suite.run("--device", "cpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_nowhere*names no device kind*"])


def test_device_rules_register_their_markers(suite):
    result = suite.run("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.devices(*kinds, reason=None)*", "@pytest.mark.needs_other_device(why)*"])
