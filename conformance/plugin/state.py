"""Process-global autograd state that a test must leave as it found it."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

__all__ = ["AutogradState", "capture", "differences", "restore"]


@dataclass(frozen=True)
class AutogradState:
    grad_enabled: bool
    inference_mode: bool
    anomaly_enabled: bool
    default_dtype: torch.dtype


def capture() -> AutogradState:
    return AutogradState(
        grad_enabled=torch.is_grad_enabled(),
        inference_mode=torch.is_inference_mode_enabled(),
        anomaly_enabled=torch.is_anomaly_enabled(),
        default_dtype=torch.get_default_dtype(),
    )


def differences(before: AutogradState, after: AutogradState) -> list[str]:
    return [
        f"{f.name}: {getattr(before, f.name)} -> {getattr(after, f.name)}"
        for f in fields(AutogradState)
        if getattr(before, f.name) != getattr(after, f.name)
    ]


#: inference-mode guards entered to undo a leaked inference mode; kept alive for the rest of the process, since
#: leaving one would put the leaked mode back
_RESTORING_GUARDS: list = []


def restore(state: AutogradState) -> None:
    """Best effort: put the global state back so one leaking test does not poison the rest.

    Inference mode has no public setter; a leaked one (a compiled program left it on, seen with torch.compile on
    2.13) is undone by entering torch's own inference-mode guard with the mode the test started in, and keeping it.
    """
    if torch.is_inference_mode_enabled() != state.inference_mode:
        guard = torch._C._InferenceMode(state.inference_mode)
        guard.__enter__()
        _RESTORING_GUARDS.append(guard)
    torch.set_grad_enabled(state.grad_enabled)
    torch.set_anomaly_enabled(state.anomaly_enabled)
    torch.set_default_dtype(state.default_dtype)
