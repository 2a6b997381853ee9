"""Mutants of the nondiff clauses (specs/nondiff.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

from tests.mutants.base import Mutant

MUTANTS: tuple[Mutant, ...] = ()
