"""The plugin lets hypothesis seed torch's CPU generator for every example (conformance/plugin/session.py)."""

from __future__ import annotations

import torch

from conformance.plugin.session import _TORCH_RANDOM


def test_seeding_sets_the_cpu_generator_as_a_fresh_generator_with_that_seed():
    state = _TORCH_RANDOM.getstate()
    try:
        _TORCH_RANDOM.seed(1234)
        drawn = torch.rand(5)
        assert torch.equal(drawn, torch.rand(5, generator=torch.Generator().manual_seed(1234)))
        _TORCH_RANDOM.seed(1234)
        assert torch.equal(torch.rand(5), drawn)
    finally:
        _TORCH_RANDOM.setstate(state)


def test_seeding_queues_nothing_for_uninitialised_accelerators():
    """torch.manual_seed would queue a seed with a formatted stack per call for CUDA (3-4 ms per example)."""
    if torch.cuda.is_initialized():
        return
    calls = []
    original = torch.cuda._lazy_call
    torch.cuda._lazy_call = lambda *args, **kwargs: calls.append(args)
    try:
        state = _TORCH_RANDOM.getstate()
        _TORCH_RANDOM.seed(7)
        _TORCH_RANDOM.setstate(state)
    finally:
        torch.cuda._lazy_call = original
    assert calls == []
