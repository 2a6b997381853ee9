"""Whether a pytest session is a conformance run: the plugin stays dormant in every other session.

The plugin is a ``pytest11`` entry point (``pyproject.toml``), so pytest loads it
in *every* session of an environment that has the package installed, a user's
own project's tests included.  Only a conformance run gets its fixtures (the
``device`` and ``mode`` fixtures, the autouse state guard), its device and mode
parametrization, its hypothesis profiles and torch RNG registration, its report
header, terminal section and JSON report.  A session is a conformance run when

* it asks for the plugin by name: ``-p conformance.plugin`` (on the command line,
  in ``addopts`` or ``PYTEST_ADDOPTS``), ``PYTEST_PLUGINS=conformance.plugin``, or
  ``pytest_plugins = ["conformance.plugin"]`` in an initial conftest (this
  repository's root conftest does: its own tests run with the plugin active);
* it gives one of the plugin's options (``--device``, ``--mode``, ``--clause``,
  ``--expectations``, ...); or
* what it collects holds conformance tests or benchmarks: a path or node id under
  the suite's tests (``conformance/tests``, ``conformance/benchmarks``, the
  ``conformance_testpaths`` ini option), a ``--pyargs`` module there, or a
  directory holding them that pytest would recurse into (not one inside a
  virtual environment, ``site-packages`` or a directory ``norecursedirs`` skips:
  ``pytest`` in a project with an in-tree ``.venv`` stays dormant).

This module imports neither torch nor hypothesis nor the specs: deciding costs a
dormant session nothing measurable.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
from pathlib import Path
from typing import Iterable, Iterator

import pytest

__all__ = ["PLUGIN_NAME", "PACKAGE_ROOTS", "activation_reason", "conformance_roots"]

#: the plugin's module and its ``pytest11`` entry point name (the same, so ``-p`` never registers it twice)
PLUGIN_NAME = "conformance.plugin"
_PACKAGE = Path(__file__).resolve().parent.parent
#: where the installed suite's conformance tests and benchmarks live
PACKAGE_ROOTS = (_PACKAGE / "tests", _PACKAGE / "benchmarks")

#: the plugin's options whose presence alone makes a session a conformance run, with their defaults
_OPTION_DEFAULTS = {
    "device": None,
    "mode": None,
    "backend": None,
    "clause": None,
    "specs_dir": None,
    "expectations": None,
    "replay": None,
    "benchmark_torch_threads": 1,
}


def conformance_roots(config: pytest.Config) -> list[Path]:
    """The directories holding conformance tests and benchmarks in this session."""
    configured = [Path(p).resolve() for p in config.getini("conformance_testpaths")]
    return configured + list(PACKAGE_ROOTS)


def activation_reason(config: pytest.Config, default_report: str, skipped: Iterable[str] = ()) -> str | None:
    """Why this session is a conformance run (a short phrase), or None where the plugin stays dormant.

    ``skipped``: the plugin's options a conftest or another plugin had taken (their values are not the plugin's).
    """
    if _requested_by_name(config):
        return f"requested with -p {PLUGIN_NAME} or pytest_plugins"
    others = {name.lstrip("-").replace("-", "_") for name in skipped}
    for dest, default in {**_OPTION_DEFAULTS, "conformance_report": default_report}.items():
        if dest not in others and getattr(config.option, dest, default) != default:
            return f"--{dest.replace('_', '-')} given"
    roots = conformance_roots(config)
    norecurse = config.getini("norecursedirs")
    for path in _argument_paths(config):
        for root in roots:
            if path == root or root in path.parents:
                return f"collects {path}"
            if path in root.parents and _recursed_into(path, root, norecurse):
                return f"collects {root} (under {path})"
    return None


def _requested_by_name(config: pytest.Config) -> bool:
    plugins = [p.strip() for p in getattr(config.option, "plugins", None) or ()]
    if PLUGIN_NAME in plugins:
        return True
    if PLUGIN_NAME in [p.strip() for p in os.environ.get("PYTEST_PLUGINS", "").split(",")]:
        return True
    for plugin in config.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", None) or "x").name != "conftest.py":
            continue
        wanted = getattr(plugin, "pytest_plugins", ())
        if PLUGIN_NAME in ([wanted] if isinstance(wanted, str) else list(wanted or ())):
            return True
    return False


def _argument_paths(config: pytest.Config) -> Iterator[Path]:
    """The paths the session collects from: its arguments (node ids cut at ``::``; modules with ``--pyargs``)."""
    for arg in config.args:
        text = str(arg).split("::")[0]
        if getattr(config.option, "pyargs", False):
            found = _module_path(text)
            if found is not None:
                yield found
                continue
        yield (config.invocation_params.dir / text).resolve()


def _module_path(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]).resolve()
    return Path(spec.origin).resolve() if spec.origin else None


def _recursed_into(top: Path, root: Path, norecurse: Iterable[str]) -> bool:
    """Whether collecting ``top`` reaches ``root``: no directory on the way is a virtual environment,
    ``site-packages`` or skipped by ``norecursedirs``."""
    patterns = list(norecurse)
    for directory in [root, *root.parents]:
        if directory == top:
            return True
        if (
            (directory / "pyvenv.cfg").exists()
            or directory.name in ("site-packages", "dist-packages")
            or any(fnmatch.fnmatch(directory.name, pattern) for pattern in patterns)
        ):
            return False
    return False
