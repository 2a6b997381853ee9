"""The ``autograd-conformance`` command (conformance/command.py) and the ``--expectations PATH`` trap.

``run`` is driven in-process through ``pytester`` (its directory is outside the checkout) with exactly the
pytest arguments the command builds; one subprocess runs the installed console script itself.  The trap:
pytest chooses its rootdir from the positional arguments before any plugin has said which options take a
value, so ``pytest --expectations /elsewhere/x.toml`` moved the rootdir to ``/elsewhere``; ``run`` fixes the
rootdir, and plain pytest refuses such a run with a one-line usage error naming the ``=`` form.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from conformance import command
from conformance.command import PACKAGE_DIR, RUN_INI, main, pytest_arguments
from tests.test_plugin import _keep_outer_hypothesis_profile, clause_md  # noqa: F401 (an autouse fixture)

REPO = Path(__file__).resolve().parent.parent
#: one quick conformance test, by the node id a report gives it
DETACH_NODE = "conformance/tests/test_detach.py::test_detach_in_place"


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An expectations file in a directory of its own, outside the checkout and the run's directory."""
    path = tmp_path_factory.mktemp("elsewhere") / "x.toml"
    shutil.copy(PACKAGE_DIR / "spec" / "expectations.toml", path)
    return path


# ----------------------------------------------------------------------------- the command line


def test_run_arguments_put_the_users_last():
    args = pytest_arguments(["--device", "cpu", "-k", "detach"], cwd=Path("/somewhere"))
    assert args[:2] == ["-p", "conformance.plugin"]
    assert args[args.index("-c") + 1] == str(RUN_INI)
    assert args[args.index("--rootdir") + 1] == str(PACKAGE_DIR.parent)
    assert f"cache_dir={Path('/somewhere') / '.pytest_cache'}" in args
    assert args[-5:] == ["--device", "cpu", "-k", "detach", str(PACKAGE_DIR / "tests")]


def test_run_ini_keeps_the_repositorys_pytest_settings():
    """``run`` reads conformance/run.ini instead of pyproject.toml: the settings that change outcomes agree."""
    import iniconfig

    run = iniconfig.IniConfig(str(RUN_INI))["pytest"]
    repo = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert run["xfail_strict"] == str(repo["xfail_strict"]).lower()
    assert run["addopts"].split() == repo["addopts"]
    assert [line.strip() for line in run["filterwarnings"].strip().splitlines()] == repo["filterwarnings"]
    assert run["conformance_installed_run"] == "true"


@pytest.mark.parametrize("name", command.REPORT_COMMANDS)
def test_report_commands_pass_through(monkeypatch: pytest.MonkeyPatch, name: str):
    seen = []
    monkeypatch.setattr("conformance.reporting.cli.main", lambda argv: seen.append(argv) or 7)
    assert main([name, "a.json", "--format", "markdown"]) == 7
    assert seen == [[name, "a.json", "--format", "markdown"]]


def test_run_passes_pytests_exit_status(monkeypatch: pytest.MonkeyPatch):
    seen = []
    monkeypatch.setattr(pytest, "main", lambda args: seen.append(args) or pytest.ExitCode.TESTS_FAILED)
    assert main(["run", "--device", "cpu"]) == 1
    assert seen[0][-3:-1] == ["--device", "cpu"]


def test_usage(capsys: pytest.CaptureFixture[str]):
    assert main(["--help"]) == 0
    assert "run [PYTEST ARGS...]" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: unknown command 'frobnicate'") and len(err[-1].splitlines()) == 1


def test_python_dash_m_conformance_is_the_same_command(capsys: pytest.CaptureFixture[str]):
    import conformance.__main__ as dunder_main

    assert dunder_main.main(["--help"]) == 0
    assert "run [PYTEST ARGS...]" in capsys.readouterr().out


# ----------------------------------------------------------------------------- run, in-process from elsewhere


def test_run_from_elsewhere_with_an_outside_expectations_file(pytester: pytest.Pytester, outside: Path):
    """The trap, through ``run``: ``--expectations PATH`` space-separated, a file outside; a report node id as the
    test argument; the report lands in the current directory with the checkout's node ids."""
    result = pytester.runpytest(
        *pytest_arguments(["--expectations", str(outside), "--device", "cpu", DETACH_NODE], cwd=pytester.path)
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["rootdir: " + str(PACKAGE_DIR.parent), "*VERDICT: torch * conforms on cpu*"])
    report = json.loads((pytester.path / "conformance-report.json").read_text(encoding="utf-8"))
    assert report["expectations"]["path"] == str(outside)
    assert report["tests"] and all(t["nodeid"].startswith(DETACH_NODE + "[cpu") for t in report["tests"])
    assert not (pytester.path / ".pytest_cache").exists() or (pytester.path / ".pytest_cache").is_dir()


def test_run_without_test_paths_collects_the_installed_suite(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\naddopts = --this-option-does-not-exist\n")  # the directory's own config: not read
    pytester.makeconftest("raise RuntimeError('a conftest of the current directory is not loaded')\n")
    result = pytester.runpytest(
        *pytest_arguments(["--device", "cpu", "--clause", "DETACH-1", "--co", "-q", "--conformance-report="], cwd=pytester.path)
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["conformance/tests/test_detach.py::*[[]cpu*"])


# ----------------------------------------------------------------------------- plain pytest


@pytest.fixture
def tiny_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nconformance_testpaths = .\n")
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "area.md").write_text("# Test area\n\n" + clause_md("PASS-1", "holds"), encoding="utf-8")
    pytester.makepyfile(
        test_conformance="import pytest\n\n@pytest.mark.spec('PASS-1')\ndef test_holds(device):\n    pass\n"
    )
    return pytester


def test_plain_pytest_refuses_a_rootdir_taken_from_an_options_value(tiny_suite: pytest.Pytester, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "x.toml"
    outside.write_text("", encoding="utf-8")
    args = ("-p", "conformance.plugin", "--specs-dir=specs", "--device=cpu")
    result = tiny_suite.runpytest(*args, "--expectations", str(outside))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: pytest took the value in '--expectations {outside}' for a test path *write '--expectations={outside}'*"]
    )
    fixed = tiny_suite.runpytest(*args, f"--expectations={outside}")
    fixed.assert_outcomes(passed=1)


# ----------------------------------------------------------------------------- the installed console script


def test_the_console_script_runs_from_elsewhere(tmp_path: Path, outside: Path):
    script = Path(sys.executable).parent / "autograd-conformance"
    if not script.exists():
        pytest.skip("the console script is not installed in this environment (pip install -e .)")
    proc = subprocess.run(
        [str(script), "run", "--expectations", str(outside), "--device", "cpu", "-p", "no:cacheprovider", DETACH_NODE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Module already imported" not in proc.stdout + proc.stderr
    report = json.loads((tmp_path / "conformance-report.json").read_text(encoding="utf-8"))
    assert report["exit_status"] == 0 and report["expectations"]["path"] == str(outside)


def test_no_cache_dir_where_the_cache_is_off():
    assert not [a for a in pytest_arguments(["-p", "no:cacheprovider"]) if a.startswith("cache_dir=")]
