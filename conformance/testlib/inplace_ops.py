"""The in-place forms users write, each with its out-of-place equivalent.

``INPLACE_FORMS["t.add_(1)"].apply(t)`` writes into ``t``; ``.equivalent(t)``
returns, out of place and differentiably, what ``t`` holds afterwards (None for
the random fills, which have no deterministic result).  Every form works on a
floating-point tensor of any shape, including 0-d and empty ones.  torch is
looked up when a form runs, never bound at import.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, Optional

import torch

__all__ = ["DETERMINISTIC_FORMS", "INPLACE_FORMS", "OUT_FORMS", "InPlaceForm"]


def _constant_like(t: torch.Tensor) -> torch.Tensor:
    """A fixed tensor of t's shape (the ``src`` of ``copy_``)."""
    return torch.linspace(-1, 1, t.numel(), dtype=t.dtype, device=t.device).reshape(t.shape)


@dataclass(frozen=True)
class InPlaceForm:
    source: str  # how the user writes it, with the tensor named ``t``
    apply: Callable[[torch.Tensor], object]
    equivalent: Optional[Callable[[torch.Tensor], torch.Tensor]]

    def __repr__(self) -> str:
        return self.source


def _form(source, apply, equivalent):
    return InPlaceForm(source, apply, equivalent)


_FORMS = (
    # methods
    _form("t.add_(1)", lambda t: t.add_(1), lambda t: t + 1),
    _form("t.sub_(0.5)", lambda t: t.sub_(0.5), lambda t: t - 0.5),
    _form("t.mul_(2)", lambda t: t.mul_(2), lambda t: t * 2),
    _form("t.div_(4)", lambda t: t.div_(4), lambda t: t / 4),
    _form("t.neg_()", lambda t: t.neg_(), lambda t: -t),
    _form("t.pow_(2)", lambda t: t.pow_(2), lambda t: t**2),
    _form("t.sin_()", lambda t: t.sin_(), lambda t: torch.sin(t)),
    _form("t.exp_()", lambda t: t.exp_(), lambda t: torch.exp(t)),
    _form("t.tanh_()", lambda t: t.tanh_(), lambda t: torch.tanh(t)),
    _form("t.sigmoid_()", lambda t: t.sigmoid_(), lambda t: torch.sigmoid(t)),
    _form("t.clamp_(-0.5, 0.5)", lambda t: t.clamp_(-0.5, 0.5), lambda t: t.clamp(-0.5, 0.5)),
    _form("t.zero_()", lambda t: t.zero_(), lambda t: t * 0),
    _form("t.fill_(1.5)", lambda t: t.fill_(1.5), lambda t: t * 0 + 1.5),
    _form("t.copy_(src)", lambda t: t.copy_(_constant_like(t)), lambda t: t * 0 + _constant_like(t)),
    _form("t.masked_fill_(t > 0, 0.5)", lambda t: t.masked_fill_(t.detach() > 0, 0.5), lambda t: t.masked_fill(t.detach() > 0, 0.5)),
    _form("t.relu_()", lambda t: t.relu_(), lambda t: torch.relu(t)),
    # functions and modules
    _form("torch.relu_(t)", lambda t: torch.relu_(t), lambda t: torch.relu(t)),
    _form("F.relu(t, inplace=True)", lambda t: torch.nn.functional.relu(t, inplace=True), lambda t: torch.relu(t)),
    _form("nn.ReLU(inplace=True)(t)", lambda t: torch.nn.ReLU(inplace=True)(t), lambda t: torch.relu(t)),
    # augmented and item assignment
    _form("t += 1", lambda t: operator.iadd(t, 1), lambda t: t + 1),
    _form("t -= 0.5", lambda t: operator.isub(t, 0.5), lambda t: t - 0.5),
    _form("t *= 2", lambda t: operator.imul(t, 2), lambda t: t * 2),
    _form("t /= 4", lambda t: operator.itruediv(t, 4), lambda t: t / 4),
    _form("t[...] = 1.5", lambda t: t.__setitem__(Ellipsis, 1.5), lambda t: t * 0 + 1.5),
    # random fills
    _form("t.normal_()", lambda t: t.normal_(), None),
    _form("t.uniform_()", lambda t: t.uniform_(), None),
)

#: source -> form, every in-place form the suite knows
INPLACE_FORMS = {form.source: form for form in _FORMS}
#: the forms whose result is determined by the old values
DETERMINISTIC_FORMS = {source: form for source, form in INPLACE_FORMS.items() if form.equivalent is not None}

#: ``out=`` forms writing a function's result into ``t`` itself: source -> form.  They
#: write in place like the others, but autograd refuses them outright (whatever the
#: tensor) when an argument requires grad in grad mode, so they are kept apart.
OUT_FORMS = {
    form.source: form
    for form in (
        _form("torch.add(t, 1, out=t)", lambda t: torch.add(t, 1, out=t), lambda t: t + 1),
        _form("torch.mul(t, 2, out=t)", lambda t: torch.mul(t, 2, out=t), lambda t: t * 2),
        _form("torch.neg(t, out=t)", lambda t: torch.neg(t, out=t), lambda t: -t),
        _form("torch.sin(t, out=t)", lambda t: torch.sin(t, out=t), lambda t: torch.sin(t)),
        _form("torch.clamp(t, -0.5, 0.5, out=t)", lambda t: torch.clamp(t, -0.5, 0.5, out=t), lambda t: t.clamp(-0.5, 0.5)),
    )
}
