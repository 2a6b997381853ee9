"""Mutants of the higher order clauses (specs/higher_order.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

from tests.mutants.base import Mutant

MUTANTS: tuple[Mutant, ...] = ()
