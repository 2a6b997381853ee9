"""The pytest plugin: options, and the decision whether a session is a conformance run.

Installed with the package as a ``pytest11`` entry point named ``conformance.plugin``
(``pyproject.toml``), so pytest loads it in every session of the environment and
knows its options before it parses the command line; ``-p conformance.plugin``
and the repository conftest's ``pytest_plugins`` name the same plugin and never
register it twice (``-p no:conformance.plugin`` turns it off).  Everything but the
options waits for ``activation.py`` to find the session a conformance run; a
dormant session (a user's own tests) imports neither torch nor the specs and gets
no fixture, parametrization, hypothesis profile, header or report from it.
A conformance run is set up by ``session.activate``: the run's parts, each in
a module of its own, share ``run_state.RunState``; ``fixtures.py`` holds the
``device``/``mode`` fixtures and the autouse state guard.

The installed suite runs from anywhere with ``autograd-conformance run [PYTEST ARGS]``
(``conformance/command.py``).
"""

from __future__ import annotations

import argparse
import inspect
import weakref
from pathlib import Path

import pytest

from ..testlib.modes import MODE_NAMES
from .activation import activation_reason
from .shards import pytest_addoption_shards, pytest_configure_shards  # noqa: F401 (--shard I/N: hooks registered with this module)

DEFAULT_REPORT = "conformance-report.json"
#: parsers whose options wait for the initial conftests (see pytest_addoption)
_PENDING: "weakref.WeakSet[pytest.Parser]" = weakref.WeakSet()
#: the plugin's options a conftest or another plugin had taken (so this session has not got them)
SKIPPED_OPTIONS = pytest.StashKey[list]()
#: the plugin's options that take a value (a path, a name), as the trap check below looks for them
_VALUE_OPTIONS = ("--device", "--mode", "--backend", "--clause", "--specs-dir", "--conformance-report", "--expectations", "--replay")


# ----------------------------------------------------------------------------- options


def _add_options(parser: pytest.Parser) -> list[str]:
    """Add the command line options; returns those left out because a conftest or plugin took the name."""
    group = parser.getgroup("autograd-conformance")
    taken = _taken_option_names(parser)
    skipped: list[str] = []

    def add(*names: str, **attrs) -> None:
        dest = attrs.get("dest") or names[0].lstrip("-").replace("-", "_")
        if taken & {*names, dest}:
            skipped.extend(names)
            return
        try:
            group.addoption(*names, **attrs)
        except (ValueError, argparse.ArgumentError):  # pytest >= 9 checks names and destinations as they come
            skipped.extend(names)

    add(
        "--device",
        action="append",
        metavar="DEVICE",
        help="torch device(s) to run on, repeatable or comma-separated (e.g. cpu,cuda:1). "
        "Default: cpu, plus cuda and mps, which skip when absent, and the emulated device emu "
        "where neither is present. An explicitly named device that is unavailable is a usage error.",
    )
    add(
        "--mode",
        action="append",
        metavar="MODE",
        help=f"execution mode(s), repeatable or comma-separated: {', '.join(MODE_NAMES)}. Default: eager. In a "
        "compiled mode each test's user program runs through torch.compile with that backend; a pass that did not "
        "rest on compiled code (graph break, eager fallback) is reported 'not compiled'",
    )
    add(
        "--backend",
        action="append",
        metavar="MODULE",
        help="import this Python module before devices are probed (repeatable): a vendor's backend package that "
        "registers its device when imported, e.g. torch_npu; recorded in the report's environment. Modules listed "
        "in the 'autograd_conformance.backends' entry point group are imported too.",
    )
    add(
        "--clause",
        action="append",
        metavar="ID",
        help="run only the tests citing these clause IDs (repeatable or comma-separated)",
    )
    add("--specs-dir", metavar="DIR", help="spec directory (default: the repository's specs/)")
    add(
        "--conformance-report",
        metavar="PATH",
        default=DEFAULT_REPORT,
        help=f"where to write the JSON report of every clause's outcome per device "
        f"(default: {DEFAULT_REPORT} in the directory pytest starts in; an empty value writes none). "
        "Schema: docs/report-schema.md",
    )
    add(
        "--expectations",
        metavar="PATH",
        help="TOML file of known failures per torch version and device, reported as 'known failure' "
        "instead of failing the run (default: the suite's own conformance/spec/expectations.toml, "
        "unless --specs-dir points at other specs; an empty value reads none)",
    )
    add(
        "--replay",
        metavar="REPORT",
        help="run again only the tests that failed in REPORT (a conformance report), each property test with the "
        "failing example hypothesis recorded there (tests[].reproduce); --clause narrows them to some clauses. "
        "The replay's own report goes beside REPORT as NAME-replay.json unless --conformance-report says otherwise",
    )
    add(
        "--benchmark-torch-threads",
        type=int,
        default=1,
        metavar="N",
        help="torch intra-op threads while the benchmarks in conformance/benchmarks run (default: 1, so that "
        "other load on the machine cannot stall a thread barrier; 0 keeps torch's own default)",
    )
    return skipped


def _taken_option_names(parser: pytest.Parser) -> set[str]:
    """Option names and destinations registered so far (empty where pytest's parser is laid out differently)."""
    try:
        return {
            name for group in parser._groups for option in group.options for name in (*option.names(), option.dest)
        }
    except AttributeError:  # pragma: no cover - another pytest
        return set()


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """The ini keys now; the command line options once the initial conftests have added theirs.

    Loaded by the entry point (or ``-p``), the plugin is registered before pytest reads any conftest: a
    project whose conftest adds ``--device`` (common in torch projects) would then fail on the name the plugin
    took.  So the options wait for ``pytest_load_initial_conftests`` to finish and leave out any name taken by
    then (a conformance run in such a project is refused: ``activation.py``).  Registered *by* a conftest
    (``pytest_plugins`` in a checkout without the package installed), the plugin adds them at once.
    """
    parser.addini(
        "conformance_installed_run",
        type="bool",
        default=False,
        help="run the installed suite from any directory (set by autograd-conformance run's ini file): without test "
        "paths collect the conformance package's tests/; read a test path that does not exist from the current "
        "directory from the rootdir, so a report's node ids work as arguments",
    )
    parser.addini(
        "conformance_testpaths",
        type="paths",
        help="directories holding conformance tests (each must cite a clause); "
        "default: the conformance package's tests/",
    )
    if getattr(pluginmanager, "_confcutdir", None) is not None:  # the initial conftests are being loaded
        _add_options(parser)
    else:
        _PENDING.add(parser)


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser):
    yield
    if parser in _PENDING:
        _PENDING.discard(parser)
        early_config.stash[SKIPPED_OPTIONS] = _add_options(parser)


# ----------------------------------------------------------------------------- the run


@pytest.hookimpl(tryfirst=True)  # before hypothesis' plugin applies --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    skipped = config.stash.get(SKIPPED_OPTIONS, [])
    if activation_reason(config, DEFAULT_REPORT, skipped) is None:
        return  # not a conformance run: stay dormant
    if skipped:
        raise pytest.UsageError(
            f"this project defines {', '.join(skipped)} itself (a conftest or another plugin), so the conformance "
            "plugin cannot take them; run the suite with 'autograd-conformance run', which reads no conftest here"
        )
    _refuse_a_misplaced_rootdir(config)
    from . import session  # torch, hypothesis, the specs: only now

    session.activate(config)


def _refuse_a_misplaced_rootdir(config: pytest.Config) -> None:
    """Refuse a run whose rootdir pytest chose from an option's value taken for a test path.

    pytest picks its rootdir and ini file from the positional arguments *before* it loads any plugin, so
    ``pytest --expectations /elsewhere/x.toml`` (the value space-separated) makes ``/elsewhere`` the rootdir:
    the project's ini file (``xfail_strict``, ``testpaths``) is not read and the run collects the current
    directory.  The ``=`` form is parsed right from the start; ``autograd-conformance run`` fixes the rootdir.
    """
    expected = _rootdir_from_positionals(config)
    if expected is None or expected == config.rootpath:
        return
    args = list(config.invocation_params.args)
    culprits = [
        f"{args[i]} {args[i + 1]}"
        for i in range(len(args) - 1)
        if args[i] in _VALUE_OPTIONS and not args[i + 1].startswith("-")
    ]
    named = culprits[0] if culprits else "an option's value"
    fixed = named.replace(" ", "=", 1) if culprits else "OPTION=VALUE"
    raise pytest.UsageError(
        f"pytest took the value in '{named}' for a test path and chose the rootdir {config.rootpath} from it "
        f"(instead of {expected}); write '{fixed}', or use 'autograd-conformance run'"
    )


def _rootdir_from_positionals(config: pytest.Config) -> Path | None:
    """The rootdir pytest would choose from the session's real positional arguments (None: cannot tell)."""
    try:
        from _pytest.config.findpaths import determine_setup
    except ImportError:  # pragma: no cover - pytest moved it
        return None
    option = config.option
    offered = {
        "inifile": getattr(option, "inifilename", None),
        "override_ini": getattr(option, "override_ini", None),
        "args": [str(a) for a in getattr(option, "file_or_dir", None) or ()],
        "rootdir_cmd_arg": getattr(option, "rootdir", None) or None,
        "invocation_dir": config.invocation_params.dir,
        "config": config,
    }
    try:
        accepted = inspect.signature(determine_setup).parameters
        return Path(determine_setup(**{k: v for k, v in offered.items() if k in accepted})[0])
    except Exception:  # noqa: BLE001 - a pytest whose internals differ: skip the check
        return None
