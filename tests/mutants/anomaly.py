"""Mutants of the anomaly clauses (specs/anomaly.md): each breaks one behaviour the way a regression would.

``detect_anomaly`` and ``set_detect_anomaly`` set the mode through ``torch.set_anomaly_enabled`` (looked up on
``torch`` at each call), so patching that function changes both forms; the engine's error and warning are
changed by wrapping ``torch.autograd.backward`` (which ``Tensor.backward`` calls) and ``torch.autograd.grad``.
"""

from __future__ import annotations

import re
import warnings

import torch

from tests.mutants.base import Mutant


def _patch_set_anomaly_enabled(mp, check_nan_when_enabled):
    original = torch.set_anomaly_enabled

    def set_anomaly_enabled(enabled, check_nan=True):
        if enabled:
            check_nan = check_nan_when_enabled(check_nan)
        return original(enabled, check_nan)

    mp.setattr(torch, "set_anomaly_enabled", set_anomaly_enabled)


def _nan_check_dropped(mp):
    _patch_set_anomaly_enabled(mp, lambda check_nan: False)


def _check_nan_false_ignored(mp):
    _patch_set_anomaly_enabled(mp, lambda check_nan: True)


def _wrap_backward_and_grad(mp, around):
    for name in ("backward", "grad"):
        original = getattr(torch.autograd, name)

        def wrapper(*args, __original=original, **kwargs):
            return around(lambda: __original(*args, **kwargs))

        mp.setattr(torch.autograd, name, wrapper)


def _nan_error_does_not_name_the_node(mp):
    def around(call):
        try:
            return call()
        except RuntimeError as exc:
            if "returned nan values" not in str(exc):
                raise
            raise RuntimeError(re.sub(r"Function '[^']*' ", "A backward function ", str(exc))) from None

    _wrap_backward_and_grad(mp, around)


def _forward_traceback_not_recorded(mp):
    def around(call):
        caught = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                return call()
        finally:  # re-emitted after the recording block: re-emitting inside it would record them again
            for w in list(caught):
                message = str(w.message)
                if "Traceback of forward call" in message:  # as if the forward had not recorded its stack
                    message = message.split(" Traceback of forward call")[0] + " No forward pass information available."
                warnings.warn_explicit(message, w.category, w.filename, w.lineno)

    _wrap_backward_and_grad(mp, around)


def _exit_restores_only_the_enabled_flag(mp):
    def __exit__(self, *args):
        torch.set_anomaly_enabled(self.prev)  # check_nan back to its default (True), not to what it was

    mp.setattr(torch.autograd.detect_anomaly, "__exit__", __exit__)
    mp.setattr(torch.autograd.set_detect_anomaly, "__exit__", __exit__)


MUTANTS = (
    Mutant("anomaly_nan_check_dropped", ("ANOMALY-1",), "anomaly detection turned on with check_nan=True no longer checks backward outputs for NaN", _nan_check_dropped),
    Mutant(
        "anomaly_nan_error_does_not_name_the_node",
        ("ANOMALY-1",),
        "the RuntimeError for a NaN returned by a backward node no longer names the node ('A backward function returned nan values ...')",
        _nan_error_does_not_name_the_node,
    ),
    Mutant(
        "anomaly_forward_traceback_not_recorded",
        ("ANOMALY-2",),
        "the forward pass under anomaly detection records no traceback: the warning of a failing backward node says 'No forward pass information available'",
        _forward_traceback_not_recorded,
    ),
    Mutant("anomaly_check_nan_false_ignored", ("ANOMALY-3",), "anomaly detection with check_nan=False still raises on NaN (the flag is ignored)", _check_nan_false_ignored),
    Mutant(
        "anomaly_exit_restores_only_the_enabled_flag",
        ("ANOMALY-4",),
        "leaving detect_anomaly / set_detect_anomaly restores whether anomaly mode was on, but sets check_nan to its default True instead of its previous value",
        _exit_restores_only_the_enabled_flag,
    ),
)
