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


def restore(state: AutogradState) -> None:
    """Best effort: put the global state back so one leaking test does not poison the rest."""
    torch.set_grad_enabled(state.grad_enabled)
    torch.set_anomaly_enabled(state.anomaly_enabled)
    torch.set_default_dtype(state.default_dtype)
    # Inference mode has no public setter: a leaked guard can only be reported, not undone.
