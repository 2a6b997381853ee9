"""What a mutant is: a deliberately broken torch behaviour, applied with ``pytest.MonkeyPatch``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import pytest

__all__ = ["Mutant"]


@dataclass(frozen=True)
class Mutant:
    """One broken behaviour.

    ``apply`` must change torch only through the ``MonkeyPatch`` it is given
    (``setattr``/``setitem``), so the kill matrix can apply and undo it around
    every single test; it must touch nothing at import.  ``breaks`` names the
    clauses whose tests must fail (the kill matrix checks each is reported
    violated).  ``regression`` is the upstream issue whose user-visible symptom
    the mutant reproduces, for mutants modelled on a bug that shipped in a torch
    release.
    """

    name: str
    breaks: tuple[str, ...]
    description: str
    apply: Callable[[pytest.MonkeyPatch], None]
    regression: Optional[str] = None

    @property
    def area(self) -> str:
        return self.breaks[0].split("-")[0]
