"""The version matrix runs environments in parallel without clobbering: tox.ini, tools/run-torch-matrix,
and the sharded GitHub Actions gate in docs/.

* tox.ini: every path an environment writes (its report, pytest's cache, hypothesis' storage, the emulated
  device's build) is its own, checked on tox's resolved configuration, so ``tox p`` can run any of them side
  by side;
* tools/run-torch-matrix: runs environments at once up to ``--jobs`` (a stand-in ``tox`` records when each
  ran), still one report and log per environment, deletes each environment after its run, fails when one
  failed, and defaults its parallelism from cores, memory and disk;
* docs/torch-upgrade-gate.yml: each side of the gate is split into shard jobs with the suite's
  ``--shard I/N``, every shard report is uploaded and the gate merges exactly those, per side, with
  ``python -m conformance merge`` before it diffs; the options it uses are the suite's, and the gate job's
  minimal install runs the report tools.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "docs" / "torch-upgrade-gate.yml"
RUNNER = ROOT / "tools" / "run-torch-matrix"


# ----------------------------------------------------------------------------------------------- tox.ini


def tox_ini() -> configparser.ConfigParser:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    return tox


def resolved_tox_config(envs: list[str], keys: list[str]) -> dict[str, dict[str, str]]:
    """``tox config`` for ``envs``: {env: {key: value}} as tox resolves them (substitutions done)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CONFORMANCE_", "TOX_", "HYPOTHESIS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "tox", "config", "-e", ",".join(envs), "-k", *keys],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config: dict[str, dict[str, str]] = {}
    env = key = None
    for line in result.stdout.splitlines():
        if match := re.match(r"^\[testenv:(.+)\]$", line):
            env = match.group(1)
            config[env] = {}
        elif match := re.match(r"^(\w+) =\s?(.*)$", line):
            key = match.group(1)
            config[env][key] = match.group(2)
        elif line.startswith("  ") and env and key:
            config[env][key] = (config[env][key] + "\n" + line.strip()).strip()
    return config


def test_tox_environments_write_to_paths_of_their_own():
    pytest.importorskip("tox")
    envs = ["torch113", "torch213", "torch215", "local", "self"]
    config = resolved_tox_config(envs, ["commands", "set_env", "env_dir"])
    written: dict[str, str] = {}
    for env in envs:
        env_dir = config[env]["env_dir"]
        command = shlex.split(config[env]["commands"])
        paths = {"pytest cache": next(arg.split("=", 1)[1] for arg in command if arg.startswith("cache_dir="))}
        if env != "self":
            paths["report"] = next(arg.split("=", 1)[1] for arg in command if arg.startswith("--conformance-report="))
            assert paths["report"].endswith(f"reports{os.sep}{env}.json")
        set_env = dict(re.findall(r"^(\w+)=(.*)$", config[env]["set_env"], flags=re.M))
        assert "HYPOTHESIS_STORAGE_DIRECTORY" in set_env, f"{env}: hypothesis' example database would be shared"
        paths["hypothesis storage"] = set_env["HYPOTHESIS_STORAGE_DIRECTORY"]
        assert paths["pytest cache"].startswith(env_dir) and paths["hypothesis storage"].startswith(env_dir)
        # one emulator build directory per environment, kept when the environment is deleted
        assert "CONFORMANCE_EMU_BUILD_DIR" in set_env, f"{env}: the emulated device's build would be shared"
        paths["emulator build"] = set_env["CONFORMANCE_EMU_BUILD_DIR"]
        assert not paths["emulator build"].startswith(env_dir + os.sep)
        for what, path in paths.items():
            assert path not in written, f"{env}'s {what} {path} is also {written[path]}'s"
            written[path] = env


def test_tox_passes_the_suites_own_settings_and_cache_locations_through():
    pass_env = tox_ini()["testenv"]["pass_env"].split()
    # CONFORMANCE_PROFILE, CONFORMANCE_EMU_BUILD_DIR, ...; where the emulator's build and inductor's caches live
    for name in ("CONFORMANCE_*", "CI", "TORCHINDUCTOR_CACHE_DIR", "XDG_CACHE_HOME"):
        assert name in pass_env


def test_tox_ini_states_the_parallelism_rule():
    text = (ROOT / "tox.ini").read_text(encoding="utf-8")
    assert "tox p" in text and re.search(r"peak", text, flags=re.I), "tox.ini must say how many envs to run at once"


# ------------------------------------------------------------------------------------ tools/run-torch-matrix

#: a stand-in for tox: `tox -l` lists environments; `tox -e ENV -- ARGS` records its start and end time, makes
#: .tox/ENV, prints a pytest summary and tox's result line, and fails for the environments in FAIL_ENVS
FAKE_TOX = r"""#!/usr/bin/env bash
if [ "$1" = -l ]; then printf 'torch113\ntorch20\ntorch215\nlocal\nself\n'; exit 0; fi
env="$2"; shift 3
mkdir -p ".tox/$env"
echo "$env start $(date +%s.%N) args:$*" >>"$TOX_TRACE"
sleep "${FAKE_SECONDS:-1}"
echo "$env end $(date +%s.%N)" >>"$TOX_TRACE"
echo '{}' >"reports/$env.json"
rc=0; case " ${FAIL_ENVS:-} " in *" $env "*) rc=1 ;; esac
if [ "$rc" = 0 ]; then echo "=== 3 passed in 1.00s ==="; echo "  $env: OK (1.00 seconds)"
else echo "=== 1 failed, 2 passed in 1.00s ==="; echo "  $env: FAIL code 1 (1.00 seconds)"; fi
exit "$rc"
"""


@pytest.fixture()
def matrix_checkout(tmp_path):
    """A checkout holding only tools/run-torch-matrix, with the stand-in tox first on PATH."""
    (tmp_path / "tools").mkdir()
    shutil.copy2(RUNNER, tmp_path / "tools" / "run-torch-matrix")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tox"
    fake.write_text(FAKE_TOX, encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def run_matrix(checkout: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("JOBS", "KEEP_ENVS", "FAIL_ENVS")}
    environ.update(PATH=f"{checkout / 'bin'}{os.pathsep}{os.environ['PATH']}", TOX_TRACE=str(checkout / "trace"), **env)
    return subprocess.run(
        ["bash", str(checkout / "tools" / "run-torch-matrix"), *args],
        cwd=checkout, env=environ, capture_output=True, text=True, timeout=60,
    )


def trace(checkout: Path) -> dict[str, dict[str, float | str]]:
    runs: dict[str, dict] = {}
    for line in (checkout / "trace").read_text().splitlines():
        env, what, when, *rest = line.split(" ", 3)
        runs.setdefault(env, {})[what] = float(when)
        if rest:
            runs[env]["args"] = rest[0].removeprefix("args:")
    return runs


def overlapping(runs: dict) -> bool:
    spans = sorted((run["start"], run["end"]) for run in runs.values())
    return any(later_start < earlier_end for (_, earlier_end), (later_start, _) in zip(spans, spans[1:]))


def test_matrix_runs_every_torch_environment_in_parallel_and_deletes_each(matrix_checkout):
    (matrix_checkout / ".tox" / "self").mkdir(parents=True)  # not a torch environment: untouched
    result = run_matrix(matrix_checkout, "--jobs", "3", "--", "--device", "cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    runs = trace(matrix_checkout)
    assert set(runs) == {"torch113", "torch20", "torch215"}, "tox -l's torch* environments, nothing else"
    assert overlapping(runs), "with --jobs 3 the three environments must run at the same time"
    assert max(run["end"] for run in runs.values()) - min(run["start"] for run in runs.values()) < 2.5
    assert all(run["args"] == "--device cpu" for run in runs.values()), "pytest options after -- reach each run"
    for env in runs:
        assert (matrix_checkout / "reports" / f"{env}.json").exists()
        assert "3 passed" in (matrix_checkout / "reports" / f"{env}.log").read_text()
        assert re.search(rf"^{env}: exit 0, \d+s wall; 3 passed in 1.00s  {env}: OK", result.stdout, flags=re.M)
        assert not (matrix_checkout / ".tox" / env).exists(), f".tox/{env} must be deleted after its run"
    assert (matrix_checkout / ".tox" / "self").exists()
    assert "3 environment(s), 3 at a time (--jobs)" in result.stdout


def test_matrix_with_one_job_runs_one_environment_at_a_time_and_keeps_envs_when_asked(matrix_checkout):
    result = run_matrix(matrix_checkout, "-j", "1", "torch215", "torch113", FAKE_SECONDS="0.3", KEEP_ENVS="1")
    assert result.returncode == 0, result.stdout + result.stderr
    runs = trace(matrix_checkout)
    assert set(runs) == {"torch215", "torch113"} and not overlapping(runs)
    assert (matrix_checkout / ".tox" / "torch215").is_dir() and (matrix_checkout / ".tox" / "torch113").is_dir()


def test_matrix_runs_an_environment_named_twice_once(matrix_checkout):
    result = run_matrix(matrix_checkout, "--jobs", "2", "torch113", "torch20", "torch113", FAKE_SECONDS="0.2")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = (matrix_checkout / "trace").read_text().splitlines()
    assert sorted(line.split()[0] for line in lines if " start " in line) == ["torch113", "torch20"]


def test_matrix_fails_when_one_environment_fails_and_still_runs_the_others(matrix_checkout):
    result = run_matrix(matrix_checkout, "--jobs=2", FAKE_SECONDS="0.3", FAIL_ENVS="torch20")
    assert result.returncode == 1, result.stdout + result.stderr
    assert set(trace(matrix_checkout)) == {"torch113", "torch20", "torch215"}
    assert re.search(r"^torch20: exit 1, .*1 failed", result.stdout, flags=re.M)
    assert re.search(r"^torch215: exit 0, ", result.stdout, flags=re.M)
    assert "exit 1" in result.stdout.splitlines()[-1]


def test_matrix_default_parallelism_comes_from_cores_memory_and_disk(matrix_checkout):
    result = run_matrix(matrix_checkout, "torch113", FAKE_SECONDS="0")
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"1 environment\(s\), (\d+) at a time \((\d+) cores, memory for (\d+) .* disk for (\d+)", result.stdout)
    assert match, result.stdout
    jobs, cores, by_memory, by_disk = map(int, match.groups())
    assert cores >= 1
    assert jobs == max(1, min(cores, by_memory, by_disk))
    # an environment that needs more memory than the machine has: one at a time
    starved = run_matrix(matrix_checkout, "torch113", FAKE_SECONDS="0", MATRIX_ENV_MEMORY_GIB="100000")
    assert "1 environment(s), 1 at a time (" in starved.stdout and "memory for 0 " in starved.stdout


def test_matrix_interrupted_stops_every_running_environment(matrix_checkout):
    environ = {k: v for k, v in os.environ.items() if k not in ("JOBS", "KEEP_ENVS", "FAIL_ENVS")}
    environ.update(PATH=f"{matrix_checkout / 'bin'}{os.pathsep}{os.environ['PATH']}",
                   TOX_TRACE=str(matrix_checkout / "trace"), FAKE_SECONDS="3")
    runner = subprocess.Popen(["bash", str(matrix_checkout / "tools" / "run-torch-matrix"), "--jobs", "2"],
                              cwd=matrix_checkout, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(_started(matrix_checkout)) < 2:
        time.sleep(0.05)
    assert len(_started(matrix_checkout)) == 2
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=10) == 130
    time.sleep(3.5)  # a run left behind would log its end by now
    assert " end " not in (matrix_checkout / "trace").read_text(), "an environment's run outlived the interrupt"
    assert sorted(_started(matrix_checkout)) == ["torch113", "torch20"], "nothing starts after the interrupt"


def _started(checkout: Path) -> list[str]:
    trace_file = checkout / "trace"
    lines = trace_file.read_text().splitlines() if trace_file.exists() else []
    return [line.split()[0] for line in lines if " start " in line]


@pytest.mark.parametrize("args", [["--jobs", "0"], ["--jobs", "two"], ["--jobs"], ["--fast"]])
def test_matrix_refuses_bad_options_with_one_error_line(matrix_checkout, args):
    result = run_matrix(matrix_checkout, *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not (matrix_checkout / "trace").exists(), "nothing runs after a bad option"


# ---------------------------------------------------------------------------------- the sharded gate workflow


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def run_script(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_gate_workflow_shards_each_side_one_to_shards():
    flow = workflow()
    shards = int(flow["env"]["SHARDS"])
    matrix = flow["jobs"]["conformance"]["strategy"]["matrix"]
    assert matrix["side"] == ["old", "new"]
    assert matrix["shard"] == list(range(1, shards + 1)), "the shard list must be 1..SHARDS"
    assert shards >= 2
    script = run_script(flow["jobs"]["conformance"])
    assert 'autograd-conformance run --shard "${{ matrix.shard }}/$SHARDS"' in script, "shard I of SHARDS (1-based)"
    if re.search(r"\s-n\s", script):  # xdist workers in each shard: a dependency of the suite
        assert "pytest-xdist" in suite_dependencies()
    assert '--conformance-report "conformance-${{ matrix.side }}-shard-${{ matrix.shard }}.json"' in script


def test_gate_workflow_uploads_every_shard_report_and_merges_exactly_those_before_the_diff():
    jobs = workflow()["jobs"]
    uploads = [step for step in jobs["conformance"]["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(uploads) == 1
    report = "conformance-${{ matrix.side }}-shard-${{ matrix.shard }}"
    assert uploads[0]["with"]["name"] == report and uploads[0]["with"]["path"] == report + ".json"
    assert uploads[0]["with"]["if-no-files-found"] == "error", "a shard without a report must fail, not vanish"

    gate = jobs["gate"]
    downloads = [step for step in gate["steps"] if step.get("uses", "").startswith("actions/download-artifact@")]
    assert len(downloads) == 1 and downloads[0]["with"]["merge-multiple"] is True
    pattern = downloads[0]["with"]["pattern"]
    assert re.fullmatch(pattern.replace("*", ".*"), "conformance-old-shard-1")
    for step in gate["steps"]:  # the gate's own uploads must not be picked up by a re-run's download
        if step.get("uses", "").startswith("actions/upload-artifact@"):
            assert not re.fullmatch(pattern.replace("*", ".*"), step["with"]["name"])

    runs = [step.get("run", "") for step in gate["steps"]]
    merge = next(i for i, run in enumerate(runs) if "python -m conformance merge" in run)
    diff = next(i for i, run in enumerate(runs) if "python -m conformance diff conformance-old.json" in run)
    assert merge < diff, "the shard reports are merged before the gate diffs them"
    assert 'for side in old new' in runs[merge]
    assert 'for i in $(seq 1 "$SHARDS"); do shards+=("conformance-$side-shard-$i.json"); done' in runs[merge]
    assert 'python -m conformance merge -o "conformance-$side.json" "${shards[@]}"' in runs[merge]


def test_gate_workflow_uses_options_the_suite_has():
    """--shard is the plugin's option and merge's -o is the CLI's: the workflow must not drift from them."""
    from conformance.reporting.cli import build_parser

    parser = build_parser()
    try:
        parser.parse_args(["merge", "-o", "conformance-old.json", "a.json", "b.json"])
    except SystemExit:
        pytest.fail("python -m conformance merge -o OUT REPORT... does not parse")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conformance.plugin", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert re.search(r"^\s+--shard[ =]", result.stdout, flags=re.M), "the suite has no --shard option"
    assert re.search(r"^autograd-conformance = ", (ROOT / "pyproject.toml").read_text(), flags=re.M), (
        "the workflow runs each shard with the autograd-conformance console script"
    )
    install = run_script(workflow()["jobs"]["gate"])
    assert "jsonschema" in install, "the report tools validate with jsonschema: the gate's --no-deps install needs it"


#: import names of the suite's dependencies (pyproject.toml's distribution names)
IMPORT_NAMES = {
    "torch": ["torch"], "pytest": ["pytest", "_pytest"], "hypothesis": ["hypothesis"],
    "pytest-benchmark": ["pytest_benchmark"], "markdown-it-py": ["markdown_it"], "packaging": ["packaging"],
    "tomli": ["tomli"], "numpy": ["numpy"], "ninja": ["ninja"], "jsonschema": ["jsonschema"],
    "pytest-split": ["pytest_split"], "pytest-xdist": ["xdist"],
}


def suite_dependencies() -> list[str]:
    """The distribution names of the suite's dependencies (pyproject.toml's project.dependencies)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    dependencies = re.search(r"^dependencies = \[(.*?)^\]", pyproject, flags=re.S | re.M).group(1)
    return re.findall(r'^\s*"([A-Za-z0-9_.-]+)', dependencies, flags=re.M)


def test_gate_jobs_install_is_enough_for_the_report_tools(tmp_path):
    """The gate installs the suite with --no-deps plus a few packages (no torch): summary, merge and diff must
    run with only those, every other dependency of the suite absent."""
    install = next(step["run"] for step in workflow()["jobs"]["gate"]["steps"] if "--no-deps" in step.get("run", ""))
    extra = re.search(r"&& python -m pip install (.+)$", install).group(1).split()
    names = suite_dependencies()
    unknown = [name for name in names if name not in IMPORT_NAMES]
    assert not unknown, f"add the import names of {unknown} to IMPORT_NAMES"
    absent = [module for name in names if name not in extra for module in IMPORT_NAMES[name]]
    reports = sorted((ROOT / "docs" / "reports").glob("torch-*.json.gz"))
    old, new = str(reports[0]), str(reports[-1])
    script = (
        "import sys\n"
        f"for name in {absent!r}: sys.modules[name] = None\n"
        "from conformance.reporting.cli import main\n"
        f"assert main(['summary', {old!r}]) == 0\n"
        f"assert main(['merge', '-o', sys.argv[1], {new!r}]) == 0\n"
        f"assert main(['diff', {old!r}, sys.argv[1]]) in (0, 1)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "merged.json")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
