"""Mutants of the complex numbers clauses (specs/complex_numbers.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

from tests.mutants.base import Mutant

MUTANTS: tuple[Mutant, ...] = ()
