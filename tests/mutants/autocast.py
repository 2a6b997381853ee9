"""Mutants of the autocast clauses (specs/autocast.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

from tests.mutants.base import Mutant

MUTANTS: tuple[Mutant, ...] = ()
