"""Mutants of the checkpoint clauses (CKPT-N, specs/checkpoint.md): each breaks one behaviour the way a regression would.

Every ``checkpoint`` mutant replaces ``torch.utils.checkpoint.checkpoint``, which ``checkpoint_sequential`` and
the tests look up at each call.  ``NEEDS_TORCH_BEFORE_2_1`` breaks CKPT-11, whose tests skip on torch >= 2.1:
kept out of the registry, for a run on an older line.
"""

from __future__ import annotations

import warnings

import torch
import torch.utils.checkpoint

from tests.mutants.base import Mutant

_UNSET = object()


def _wrap_checkpoint(mp, change):
    """Replace ``torch.utils.checkpoint.checkpoint`` (also what ``checkpoint_sequential`` calls) with
    ``change(original, function, args, use_reentrant, kwargs)``."""
    original = torch.utils.checkpoint.checkpoint

    def checkpoint(function, *args, use_reentrant=_UNSET, **kwargs):
        return change(original, function, args, use_reentrant, kwargs)

    mp.setattr(torch.utils.checkpoint, "checkpoint", checkpoint)


def _call(original, function, args, use_reentrant, kwargs):
    if use_reentrant is _UNSET:
        return original(function, *args, **kwargs)
    return original(function, *args, use_reentrant=use_reentrant, **kwargs)


def _recomputation_sees_drifted_inputs(mp):
    """The recomputation runs on inputs that drifted from the forward's (as if a stale buffer were reused)."""

    def change(original, function, args, use_reentrant, kwargs):
        calls = []

        def drifting(*inner, **inner_kwargs):
            calls.append(None)
            if len(calls) > 1:
                inner = tuple(a * 1.01 if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in inner)
            return function(*inner, **inner_kwargs)

        return _call(original, drifting, args, use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


def _rng_state_not_preserved(mp):
    def change(original, function, args, use_reentrant, kwargs):
        kwargs = dict(kwargs, preserve_rng_state=False)  # the stash-and-restore logic skipped
        return _call(original, function, args, use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


def _checkpoint_sequential_drops_the_last_module(mp):
    """An off-by-one in the segmentation: the last module of the last segment is never run."""
    original = torch.utils.checkpoint.checkpoint_sequential

    def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):
        functions = list(functions)
        if len(functions) > 1:
            functions = functions[:-1]
            segments = min(segments, len(functions))
        return original(functions, segments, input, use_reentrant=use_reentrant, **kwargs)

    mp.setattr(torch.utils.checkpoint, "checkpoint_sequential", checkpoint_sequential)


def _non_reentrant_runs_the_reentrant_variant(mp):
    def change(original, function, args, use_reentrant, kwargs):
        if use_reentrant is False:
            use_reentrant = True
        return _call(original, function, args, use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


def _reentrant_runs_the_non_reentrant_variant(mp):
    def change(original, function, args, use_reentrant, kwargs):
        if use_reentrant is True:
            use_reentrant = False
        return _call(original, function, args, use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


def _reentrant_output_requires_grad_through_parameters(mp):
    """The reentrant variant, given no input requiring grad, silently falls back to the non-reentrant one."""

    def change(original, function, args, use_reentrant, kwargs):
        if use_reentrant is True and not any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            use_reentrant = False
        return _call(original, function, args, use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


def _determinism_check_off(mp):
    def change(original, function, args, use_reentrant, kwargs):
        if use_reentrant is False:
            kwargs = dict(kwargs, determinism_check="none")
        return _call(original, function, args, use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


def _no_backward_inside_a_non_reentrant_region(mp):
    """torch 1.13's limitation back: torch.autograd.grad inside a non-reentrant checkpointed function raises."""
    inside = []
    original_grad = torch.autograd.grad

    def grad(*args, **kwargs):
        if inside:
            raise RuntimeError("You are calling backwards on a tensor that is never exposed. Please open an issue.")
        return original_grad(*args, **kwargs)

    def change(original, function, args, use_reentrant, kwargs):
        if use_reentrant is not False:
            return _call(original, function, args, use_reentrant, kwargs)

        def region(*inner, **inner_kwargs):
            inside.append(None)
            try:
                return function(*inner, **inner_kwargs)
            finally:
                inside.pop()

        return _call(original, region, args, use_reentrant, kwargs)

    mp.setattr(torch.autograd, "grad", grad)
    _wrap_checkpoint(mp, change)


def _reentrant_forward_records(mp):
    """The reentrant variant's forward call of the function runs with grad mode enabled."""

    def change(original, function, args, use_reentrant, kwargs):
        if use_reentrant is False:
            return _call(original, function, args, use_reentrant, kwargs)

        def with_grad(*inner, **inner_kwargs):
            with torch.enable_grad():
                return function(*inner, **inner_kwargs)

        return _call(original, with_grad, args, use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


def _missing_use_reentrant_is_silent(mp):
    """The warning dropped: a missing use_reentrant silently means True (the torch < 2.1 behaviour)."""

    def change(original, function, args, use_reentrant, kwargs):
        return _call(original, function, args, True if use_reentrant is _UNSET else use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


def _missing_use_reentrant_silently_non_reentrant(mp):
    """The announced default change made without a warning: a missing use_reentrant means False."""

    def change(original, function, args, use_reentrant, kwargs):
        return _call(original, function, args, False if use_reentrant is _UNSET else use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


def _missing_use_reentrant_warns_early(mp):
    """The 2.1 warning on an older line (what CKPT-11 rules out before 2.1)."""

    def change(original, function, args, use_reentrant, kwargs):
        if use_reentrant is _UNSET:
            warnings.warn("torch.utils.checkpoint: please pass in use_reentrant=True or use_reentrant=False explicitly.")
        return _call(original, function, args, use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)



def _nested_structures_detached(mp):
    """checkpoint(use_reentrant=False) detaches the tensors inside lists, tuples and dicts among its arguments (the
    reentrant variant's documented limitation, spread to the non-reentrant one)."""

    def detached(value):
        if isinstance(value, torch.Tensor):
            return value.detach()
        if isinstance(value, (list, tuple)):
            return type(value)(detached(v) for v in value)
        if isinstance(value, dict):
            return {k: detached(v) for k, v in value.items()}
        return value

    def change(original, function, args, use_reentrant, kwargs):
        if use_reentrant is False:
            args = tuple(a if isinstance(a, torch.Tensor) else detached(a) for a in args)
        return _call(original, function, args, use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


def _nested_checkpoint_detached(mp):
    """A checkpoint called while another checkpoint's function runs (its forward or its recomputation) returns a
    detached output: nothing flows back through the inner region."""
    depth = [0]

    def change(original, function, args, use_reentrant, kwargs):
        if depth[0] > 0:
            return _call(original, function, args, use_reentrant, kwargs).detach()

        def counted(*inner_args, **inner_kwargs):
            depth[0] += 1
            try:
                return function(*inner_args, **inner_kwargs)
            finally:
                depth[0] -= 1

        return _call(original, counted, args, use_reentrant, kwargs)

    _wrap_checkpoint(mp, change)


MUTANTS = (
    Mutant("checkpoint_recomputation_sees_drifted_inputs", ("CKPT-1",), "checkpoint's recomputation runs the function on inputs 1% off the forward's, so the gradients use other values", _recomputation_sees_drifted_inputs),
    Mutant("checkpoint_rng_state_not_preserved", ("CKPT-2",), "checkpoint ignores preserve_rng_state=True (its default): dropout draws a new mask when recomputed", _rng_state_not_preserved),
    Mutant("checkpoint_sequential_drops_the_last_module", ("CKPT-3",), "checkpoint_sequential never runs the last module (an off-by-one in the segmentation)", _checkpoint_sequential_drops_the_last_module),
    Mutant(
        "checkpoint_non_reentrant_runs_the_reentrant_variant",
        ("CKPT-4", "CKPT-7"),
        "checkpoint(use_reentrant=False) runs the reentrant implementation: torch.autograd.grad raises, and no input requiring grad means no gradients",
        _non_reentrant_runs_the_reentrant_variant,
    ),
    Mutant(
        "checkpoint_reentrant_runs_the_non_reentrant_variant",
        ("CKPT-5", "CKPT-6", "CKPT-8"),
        "checkpoint(use_reentrant=True) runs the non-reentrant implementation: torch.autograd.grad and keyword arguments work, and no warning when no input requires grad",
        _reentrant_runs_the_non_reentrant_variant,
    ),
    Mutant(
        "checkpoint_reentrant_falls_back_without_an_input_requiring_grad",
        ("CKPT-6",),
        "checkpoint(use_reentrant=True) with no input requiring grad silently records through the parameters",
        _reentrant_output_requires_grad_through_parameters,
    ),
    Mutant("checkpoint_determinism_check_off", ("CKPT-9",), "checkpoint(use_reentrant=False) no longer compares the recomputed tensors' metadata with the saved ones", _determinism_check_off),
    Mutant(
        "checkpoint_no_backward_inside_a_non_reentrant_region",
        ("CKPT-12",),
        "torch.autograd.grad inside a function checkpointed with use_reentrant=False raises (torch 1.13's limitation)",
        _no_backward_inside_a_non_reentrant_region,
    ),
    Mutant("checkpoint_reentrant_forward_records", ("CKPT-13",), "checkpoint(use_reentrant=True) calls the function for the forward pass with grad mode enabled", _reentrant_forward_records),
    Mutant("checkpoint_missing_use_reentrant_is_silent", ("CKPT-10",), "checkpoint without use_reentrant no longer warns (it still runs the reentrant variant)", _missing_use_reentrant_is_silent),
    Mutant(
        "checkpoint_missing_use_reentrant_silently_non_reentrant",
        ("CKPT-10",),
        "checkpoint without use_reentrant silently runs the non-reentrant variant (the announced default change, made without the warning)",
        _missing_use_reentrant_silently_non_reentrant,
    ),
    Mutant("checkpoint_non_reentrant_detaches_nested_structures", ("CKPT-14",), "checkpoint(use_reentrant=False) detaches the tensors inside lists, tuples and dicts among its arguments", _nested_structures_detached),
    Mutant("checkpoint_nested_output_detached", ("CKPT-15",), "a checkpoint called inside another checkpoint's function returns a detached output", _nested_checkpoint_detached),
)

#: Not in the registry: CKPT-11's tests skip on torch >= 2.1, so tests/test_mutations.py cannot prove it there.
NEEDS_TORCH_BEFORE_2_1 = (
    Mutant("checkpoint_missing_use_reentrant_warns_early", ("CKPT-11",), "checkpoint without use_reentrant warns on a torch before 2.1", _missing_use_reentrant_warns_early),
)
