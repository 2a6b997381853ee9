"""The plugin's dormancy (conformance/plugin/activation.py): loaded by its ``pytest11`` entry point in every pytest
session of an environment that has the package, it leaves a user's own tests exactly as they are without it.

A user's project (its own ``device`` fixture, a hypothesis test, a test that leaves grad mode disabled, a test
asking for a ``mode`` fixture it does not have) runs in a fresh process with the plugin loaded by the entry point
and with ``-p no:conformance.plugin``: same outcomes, same test ids, no header, no conformance section, no report,
no torch imported by the plugin, hypothesis' own default profile.  The activation rules are checked on parsed
configurations; that naming the plugin never registers it twice, with each way of naming it.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

import conformance
from conformance.plugin import DEFAULT_REPORT
from conformance.plugin.activation import PACKAGE_ROOTS, PLUGIN_NAME, _recursed_into, activation_reason


def _entry_point_installed() -> bool:
    try:
        eps = metadata.entry_points(group="pytest11")
    except TypeError:  # pragma: no cover - Python < 3.10
        eps = metadata.entry_points().get("pytest11", ())
    return any(ep.name == PLUGIN_NAME and ep.value == PLUGIN_NAME for ep in eps)


needs_entry_point = pytest.mark.skipif(
    not _entry_point_installed(), reason="the package's pytest11 entry point is not installed here (pip install -e .)"
)

USER_CONFTEST = """
import pytest

@pytest.fixture
def device():
    return "my-device"
"""

# Collected first: sees whether anything imported torch before the user's own modules did.
USER_PLAIN = """
import os
import sys

from hypothesis import given, settings, strategies as st

TORCH_BEFORE_COLLECTION = "torch" in sys.modules


def test_own_device_fixture(device):
    assert device == "my-device"


def test_nothing_imported_torch():
    assert not TORCH_BEFORE_COLLECTION


@given(st.integers())
def test_hypothesis_default_profile(n):
    current = settings()
    assert settings.get_current_profile_name() == "default"
    assert current.max_examples == 100 and current.deadline is not None  # hypothesis' own, not the suite's


def test_asks_for_a_mode_it_has_not(mode):
    pass


def test_the_plugin_is_loaded_or_not(request):
    assert request.config.pluginmanager.has_plugin("conformance.plugin") == (os.environ["EXPECT_PLUGIN"] == "1")
"""

USER_GRAD = """
import torch


def test_leaves_grad_mode_disabled():
    torch.set_grad_enabled(False)


def test_sees_it_still_disabled():
    assert not torch.is_grad_enabled()


def test_parametrized_by_itself(device):
    assert device == "my-device"
"""


def _user_project(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_a_plain=USER_PLAIN, test_b_grad=USER_GRAD)


def _ids(result: pytest.RunResult) -> list[str]:
    return sorted(m.group(0) for line in result.outlines for m in [re.match(r"\S+::\S+ (PASSED|FAILED|ERROR)", line)] if m)


@needs_entry_point
def test_a_users_own_tests_run_as_without_the_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    for name in ("PYTEST_PLUGINS", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "CI", "CONFORMANCE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    _user_project(pytester)
    common = ("-p", "no:cacheprovider", "-v", "-p", "no:randomly")
    monkeypatch.setenv("EXPECT_PLUGIN", "0")
    without = pytester.runpytest_subprocess(*common, "-p", f"no:{PLUGIN_NAME}")
    monkeypatch.setenv("EXPECT_PLUGIN", "1")
    loaded = pytester.runpytest_subprocess(*common)

    assert without.parseoutcomes() == loaded.parseoutcomes() == {"passed": 7, "errors": 1}
    assert _ids(without) == _ids(loaded)
    assert "fixture 'mode' not found" in loaded.stdout.str()
    output = loaded.stdout.str()
    for pattern in (r"autograd-conformance [\d.]+: torch", r"= autograd conformance =", "VERDICT", "report: "):
        assert not re.search(pattern, output), pattern
    assert not (pytester.path / DEFAULT_REPORT).exists()


def test_activation_rules(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Which sessions are conformance runs, from their command lines (parsed, not configured)."""
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(test_mine="def test_one():\n    pass\n")
    package_tests = str(PACKAGE_ROOTS[0])

    def reason(*args: str) -> str | None:
        config = pytester.parseconfig(*args)
        try:
            return activation_reason(config, DEFAULT_REPORT)
        finally:
            config._ensure_unconfigure()

    assert reason() is None
    assert reason("test_mine.py", "-k", "one") is None
    assert reason("--hypothesis-profile", "ci") is None  # another plugin's option
    assert reason("-p", PLUGIN_NAME).startswith("requested")
    assert reason("--device", "cpu") == "--device given"
    assert reason("--expectations=") == "--expectations given"
    assert reason("--conformance-report", "r.json") == "--conformance-report given"
    # --noconftest: from this checkout, these paths would load its conftest, which names the plugin
    assert reason("--noconftest", package_tests).startswith("collects")
    assert reason("--noconftest", f"{package_tests}/test_detach.py::test_x").startswith("collects")
    assert reason("--noconftest", "--pyargs", "conformance.tests").startswith("collects")
    assert reason("--noconftest", str(Path(conformance.__file__).parent)).startswith("collects")  # holds them

    pytester.makeconftest(f"pytest_plugins = [{PLUGIN_NAME!r}]\n")
    assert reason().startswith("requested")


def test_a_directory_above_a_virtual_environment_does_not_count(tmp_path: Path):
    venv_tests = tmp_path / ".venv" / "lib" / "python3" / "site-packages" / "conformance" / "tests"
    venv_tests.mkdir(parents=True)
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    assert not _recursed_into(tmp_path, venv_tests, ["*.egg", ".*", "build", "dist", "venv"])
    checkout_tests = tmp_path / "checkout" / "conformance" / "tests"
    checkout_tests.mkdir(parents=True)
    assert _recursed_into(tmp_path, checkout_tests, ["*.egg", ".*", "build", "dist", "venv"])
    assert not _recursed_into(tmp_path, checkout_tests, ["checkout"])


@needs_entry_point
@pytest.mark.parametrize("how", ["-p", "conftest", "PYTEST_PLUGINS"])
def test_naming_the_plugin_never_registers_it_twice(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how):
    """The entry point is named like the module: pytest finds the name taken and skips the second registration
    (another name would make pluggy refuse the same module twice: 'Plugin already registered under a different
    name')."""
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)
    args = ["-p", "no:cacheprovider", f"--specs-dir={Path(conformance.__file__).parent.parent / 'specs'}"]
    if how == "-p":
        args += ["-p", PLUGIN_NAME]
    elif how == "conftest":
        pytester.makeconftest(f"pytest_plugins = [{PLUGIN_NAME!r}]\n")
    else:
        monkeypatch.setenv("PYTEST_PLUGINS", PLUGIN_NAME)
    pytester.makepyfile(
        test_registered=f"""
        import {PLUGIN_NAME}

        def test_once(request):
            manager = request.config.pluginmanager
            assert manager.get_plugin({PLUGIN_NAME!r}) is {PLUGIN_NAME}
            assert [p for p in manager.get_plugins() if p is {PLUGIN_NAME}] == [{PLUGIN_NAME}]
        """
    )
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)


@needs_entry_point
def test_no_colon_turns_it_off(pytester: pytest.Pytester):
    pytester.makepyfile(test_off=f"def test_off(request):\n    assert not request.config.pluginmanager.has_plugin({PLUGIN_NAME!r})\n")
    pytester.runpytest("-p", f"no:{PLUGIN_NAME}", "-p", "no:cacheprovider").assert_outcomes(passed=1)


@needs_entry_point
def test_a_project_with_its_own_device_option(pytester: pytest.Pytester):
    """Torch projects often add ``--device`` themselves: the plugin leaves the name to them (its options wait for
    the initial conftests), their tests run as without it, and a conformance run there is refused in one line."""
    pytester.makeconftest(
        """
        import pytest

        def pytest_addoption(parser):
            parser.addoption("--device", default="cpu")

        @pytest.fixture
        def device(request):
            return request.config.getoption("--device")
        """
    )
    pytester.makepyfile(test_own="def test_own(device):\n    assert device == 'meta'\n")
    pytester.runpytest("-p", "no:cacheprovider", "--device", "meta").assert_outcomes(passed=1)
    refused = pytester.runpytest("-p", "no:cacheprovider", "--clause", "DETACH-1")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: this project defines --device itself*autograd-conformance run*"])
