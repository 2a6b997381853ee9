"""Deliberately broken torch behaviours, to prove the conformance suite notices them.

One module per spec area (``tests/mutants/<area>.py``, each a ``MUTANTS``
tuple); ``MUTANTS`` here is every one of them by name.  Loaded as a pytest
plugin: ``pytest -p tests.mutants --mutant NAME``.  The patch is applied when
pytest configures the run and undone when it ends; without ``--mutant`` this
plugin does nothing.  ``tests/killmatrix.py`` runs every mutant against every
test instead, in one session.
"""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings

from tests.mutants import (
    accumulation,
    anomaly,
    autocast,
    backward,
    checkpoint,
    complex_numbers,
    cross_device,
    custom_function,
    detach,
    forward_ad,
    functional,
    grad_mode,
    gradient_values,
    higher_order,
    hooks,
    inplace,
    leaves,
    modules,
    nondiff,
    requires_grad,
    saved_tensors,
    threads,
    transfer,
)
from tests.mutants.base import Mutant
from tests.patching import apply_for_the_run, undo_after_the_run

__all__ = ["MUTANTS", "Mutant", "load_mutation_profile"]

_AREAS = (
    grad_mode, requires_grad, leaves, accumulation, backward, detach, inplace, hooks, modules, transfer, saved_tensors, cross_device,
    custom_function, checkpoint, higher_order, forward_ad, functional, gradient_values,
    nondiff, threads, complex_numbers, anomaly, autocast,
)  # fmt: skip


def _registry() -> dict[str, Mutant]:
    registry: dict[str, Mutant] = {}
    for area in _AREAS:
        for mutant in area.MUTANTS:
            if mutant.name in registry:
                raise ValueError(f"two mutants named {mutant.name!r}")
            registry[mutant.name] = mutant
    return registry


MUTANTS = _registry()


def load_mutation_profile() -> None:
    """Only pass/fail matters under a mutant: skip shrinking, which dominates the time of a failing run.

    A smaller budget keeps the many suite runs quick; the kill matrix proves it still catches every mutant.
    """
    settings.register_profile("mutation", settings.get_profile("ci"), max_examples=10, phases=[Phase.explicit, Phase.reuse, Phase.generate])
    settings.load_profile("mutation")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--mutant", choices=sorted(MUTANTS), help="break one torch behaviour (see tests/mutants/)")


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("mutant")
    if name:
        load_mutation_profile()
        apply_for_the_run(config, MUTANTS[name].apply)


def pytest_unconfigure(config: pytest.Config) -> None:
    undo_after_the_run(config)


def pytest_report_header(config: pytest.Config) -> str | None:
    name = config.getoption("mutant")
    return f"MUTANT ACTIVE: {name}: {MUTANTS[name].description}" if name else None
