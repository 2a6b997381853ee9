"""Modules and optimizers.  Spec: specs/modules.md.

In a compiled mode (``--mode compile:BACKEND``) each test runs its user program
through ``torch.compile`` (the ``mode`` fixture, ``conformance/testlib/modes.py``)
as a user of compiled models writes it: the network is a compiled module
(``mode.module(net)``), switched with ``eval()``/``train()`` and frozen outside
compiled code, and backward runs through its outputs; ``eval()``/``train()``,
``named_parameters()`` and the hand-written SGD update run inside compiled
functions.  Optimizer steps and ``zero_grad`` stay outside compiled code where a
user keeps them (dynamo graph-breaks in ``Optimizer.step`` on purpose and does
not trace ``Optimizer.zero_grad``); MODULE-9, about the step alone, compiles it.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Callable, Sequence

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_grad_mode, assert_requires_grad, fail
from conformance.testlib.networks import draw_mlp, fill_drawn
from conformance.testlib.strategies import seeds, tensors

nn = torch.nn


def _exact_on_cpu(device: str) -> dict:
    """Bit-for-bit on the CPU; the dtype's tolerance on devices whose kernels may differ."""
    return {"rtol": 0.0, "atol": 0.0} if device == "cpu" else {}


def _batch(data, net: nn.Sequential, device: str, *, dtype=torch.float64, min_size: int = 1, label: str = "batch") -> torch.Tensor:
    size = data.draw(st.integers(min_size, 5), label=f"{label} size")
    return data.draw(tensors(dtype=dtype, shape=(size, net[0].in_features), device=device), label=label)


def _loss(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return (net(batch) ** 2).sum()


def _in(mode) -> str:
    """A note for failure messages naming a compiled mode ("" when eager)."""
    return f" ({mode})" if mode.compiled else ""


def _snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


# ----------------------------------------------------------------------------- MODULE-1

#: form -> (call, the training flag it must leave on every module)
MODE_FORMS: dict[str, tuple[Callable[[nn.Module], nn.Module], bool]] = {
    "eval()": (lambda m: m.eval(), False),
    "train(False)": (lambda m: m.train(False), False),
    "train()": (lambda m: m.train(), True),
    "train(True)": (lambda m: m.train(True), True),
}

LEAF_LAYERS = {
    "Linear": lambda: nn.Linear(2, 2),
    "Dropout": lambda: nn.Dropout(0.5),
    "BatchNorm1d": lambda: nn.BatchNorm1d(2),
    "ReLU": lambda: nn.ReLU(),
}


class _Block(nn.Module):
    """A user-defined container: children registered as attributes."""

    def __init__(self, children):
        super().__init__()
        for index, child in enumerate(children):
            setattr(self, f"part{index}", child)


CONTAINERS = {
    "Sequential": lambda children: nn.Sequential(*children),
    "ModuleList": lambda children: nn.ModuleList(children),
    "ModuleDict": lambda children: nn.ModuleDict({f"k{i}": child for i, child in enumerate(children)}),
    "user-defined Module": _Block,
}

module_trees = st.recursive(
    st.sampled_from(sorted(LEAF_LAYERS)),
    lambda children: st.tuples(st.sampled_from(sorted(CONTAINERS)), st.lists(children, min_size=1, max_size=3)),
    max_leaves=8,
)


def _build(tree) -> nn.Module:
    if isinstance(tree, str):
        return LEAF_LAYERS[tree]()
    container, children = tree
    return CONTAINERS[container]([_build(child) for child in children])


@pytest.mark.spec("MODULE-1")
@pytest.mark.parametrize("form", sorted(MODE_FORMS))
@given(data=st.data())
def test_mode_switch_sets_training_recursively_and_returns_self(device, mode, form, data):
    tree = data.draw(module_trees, label="module tree")
    net = _build(tree).to(device)
    modules = list(net.named_modules())
    for name, module in modules:  # start from an arbitrary mix of modes, set without recursion
        module.training = data.draw(st.booleans(), label=f"initial training of {name or 'root'!r}")
    call, training = MODE_FORMS[form]
    returned = mode.run(lambda: call(net))  # compiled: the switch runs inside the compiled function
    assert_equal(returned is net, True, clause="MODULE-1", what=f"`net.{form} is net`{_in(mode)}")
    for name, module in modules:
        assert_equal(module.training, training, clause="MODULE-1", what=f"after net.{form}{_in(mode)}, .training of {name or 'the root'} ({type(module).__name__}) in {tree!r}")


# ----------------------------------------------------------------------------- MODULE-2

FREEZE_FORMS = {
    "p.requires_grad = False": lambda p: setattr(p, "requires_grad", False),
    "p.requires_grad_(False)": lambda p: p.requires_grad_(False),
}


def _draw_subset(data, names: list[str], *, label: str, one_in: Sequence[str] = (), one_out: Sequence[str] = ()) -> list[bool]:
    """A drawn subset of ``names`` as flags, by construction (no filter): with ``one_in``, a drawn one of
    those names is in it; with ``one_out``, a drawn other one of those names is not."""
    flags = data.draw(st.lists(st.booleans(), min_size=len(names), max_size=len(names)), label=f"{label} ({', '.join(names)})")
    forced_in = None
    if one_in:
        forced_in = data.draw(st.sampled_from(list(one_in)), label=f"{label}: certainly")
        flags[names.index(forced_in)] = True
    if one_out:
        forced_out = data.draw(st.sampled_from([n for n in one_out if n != forced_in]), label=f"{label}: certainly not")
        flags[names.index(forced_out)] = False
    return flags


def _freeze_some(data, net: nn.Module, *, form: str = "p.requires_grad_(False)", keep_one_of: Sequence[str] = (), label: str = "frozen") -> dict[str, bool]:
    """Freeze a drawn subset of the parameters (leaving one of ``keep_one_of`` trainable); returns name -> frozen."""
    names = [name for name, _ in net.named_parameters()]
    flags = _draw_subset(data, names, label=label, one_out=keep_one_of)
    for (name, param), frozen in zip(net.named_parameters(), flags):
        if frozen:
            FREEZE_FORMS[form](param)
    return dict(zip(names, flags))


@pytest.mark.spec("MODULE-2")
@pytest.mark.parametrize("form", sorted(MODE_FORMS))
@given(data=st.data())
def test_mode_switch_keeps_requires_grad_and_recording(device, mode, form, data):
    net = draw_mlp(data, device, batchnorm=True, dropout=True)
    frozen = _freeze_some(data, net)
    compiled = mode.module(net)  # compiled: the form switches the compiled module, which is then called
    MODE_FORMS[form][0](compiled)
    assert_grad_mode(True, clause="MODULE-2", where=f"after net.{form}{_in(mode)}")
    for name, param in net.named_parameters():
        assert_requires_grad(param, not frozen[name], clause="MODULE-2", what=f"parameter {name} (frozen={frozen[name]}) after net.{form}{_in(mode)}")
    batch = _batch(data, net, device, min_size=2)  # BatchNorm1d in training mode needs 2 samples
    out = compiled(batch)
    trainable = not all(frozen.values())
    assert_requires_grad(out, trainable, clause="MODULE-2", what=f"output of a net after net.{form}{_in(mode)} with parameters frozen {frozen}")
    if not trainable:
        return
    assert_equal(out.grad_fn is not None, True, clause="MODULE-2", what=f"output has a grad_fn after net.{form}{_in(mode)}")
    out.sum().backward()
    for name, param in net.named_parameters():
        if not frozen[name]:
            assert_equal(param.grad is not None, True, clause="MODULE-2", what=f"{name}.grad is a tensor after backward in the mode set by net.{form}{_in(mode)}")


# ----------------------------------------------------------------------------- MODULE-3, -4

small = st.integers(1, 3)
#: dropout inputs as each layer documents them: form -> (layer, input shape, spatial dimensions after the
#: channel dimension; None for elementwise dropout). Dropout1d and Dropout3d also take an unbatched input;
#: Dropout2d's 3-d input is ambiguous (torch reads it as (N, C, L) and warns), so it is not drawn.
DROPOUT_INPUTS = {
    "Dropout": ("Dropout", st.lists(small, min_size=0, max_size=3).map(tuple), None),
    "Dropout1d (N, C, L)": ("Dropout1d", st.tuples(small, small, small), 1),
    "Dropout1d (C, L)": ("Dropout1d", st.tuples(small, small), 1),
    "Dropout2d (N, C, H, W)": ("Dropout2d", st.tuples(small, small, small, small), 2),
    "Dropout3d (N, C, D, H, W)": ("Dropout3d", st.tuples(small, small, small, small, small), 3),
    "Dropout3d (C, D, H, W)": ("Dropout3d", st.tuples(small, small, small, small), 3),
    "AlphaDropout": ("AlphaDropout", st.lists(small, min_size=0, max_size=3).map(tuple), None),
    "FeatureAlphaDropout (N, C, D, H, W)": ("FeatureAlphaDropout", st.tuples(small, small, small, small, small), 3),
}
#: MODULE-4 is about the dropouts that zero or scale (the alpha dropouts shift and scale instead).
ZEROING_DROPOUT = sorted(form for form, (kind, _, _) in DROPOUT_INPUTS.items() if "Alpha" not in kind)

#: how evaluation mode is reached: form -> fn(layer) returning the module to call
EVAL_ROUTES = {
    "layer.eval()": lambda layer: layer.eval(),
    "layer.train(False)": lambda layer: layer.train(False),
    "Sequential(layer).eval()": lambda layer: nn.Sequential(layer).eval(),
}


@pytest.mark.spec("MODULE-3")
@pytest.mark.parametrize("route", sorted(EVAL_ROUTES))
@given(data=st.data())
def test_dropout_in_eval_mode_is_the_identity(device, mode, route, data):
    # every dropout kind in every example: drawing one kind per example left whole runs without nn.Dropout
    # (a derandomized profile draws the same few kinds), and a mutant of F.dropout alone survived
    for form, (kind, shape, _) in DROPOUT_INPUTS.items():
        p = data.draw(st.floats(0.0, 1.0), label=f"{form}: p")
        torch.manual_seed(data.draw(seeds(), label=f"{form}: torch seed"))
        x = data.draw(tensors(dtype=torch.float64, shape=shape, device=device, requires_grad=True), label=f"{form}: x")
        module = EVAL_ROUTES[route](mode.module(getattr(nn, kind)(p)))  # compiled: the layer, then switched
        out = module(x)
        what = f"nn.{kind}(p={p}) in eval mode via {route}{_in(mode)}"
        assert_close(out, x, clause="MODULE-3", what=f"{what}: output vs input", rtol=0, atol=0)
        out.sum().backward()
        assert_close(x.grad, torch.ones_like(x), clause="MODULE-3", what=f"{what}: gradient of out.sum()", rtol=0, atol=0)


@pytest.mark.spec("MODULE-4")
@pytest.mark.parametrize("form", ZEROING_DROPOUT)
@given(data=st.data())
def test_dropout_in_train_mode_zeroes_or_scales_each_element(device, mode, form, data):
    kind, shape, spatial_dims = DROPOUT_INPUTS[form]
    drawn_p = data.draw(st.floats(0.05, 0.95), label="p")
    torch.manual_seed(data.draw(seeds(), label="torch seed"))
    x = data.draw(tensors(dtype=torch.float64, shape=shape, device=device), label="x")
    for p in (drawn_p, 0.0, 1.0):  # the drawn rate, and the two ends the clause names
        _check_training_dropout(mode.module(getattr(nn, kind)(p)), kind, p, x.clone().requires_grad_(), spatial_dims, mode)


def _check_training_dropout(layer: nn.Module, kind: str, p: float, x: torch.Tensor, spatial_dims, mode) -> None:
    what = f"nn.{kind}(p={p}) in training mode on x of shape {tuple(x.shape)}{_in(mode)}"
    assert_equal(layer.training, True, clause="MODULE-4", what=f"{what}: .training of a new layer")
    out = layer(x)
    out.sum().backward()
    kept = x.grad != 0
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    zeros = torch.zeros_like(x)
    assert_close(x.grad, torch.where(kept, torch.full_like(x, scale), zeros), clause="MODULE-4", what=f"{what}: gradient of out.sum() (0 where dropped, 1/(1-p) where kept)")
    assert_close(out, torch.where(kept, x.detach() / (1.0 - p) if p < 1 else zeros, zeros), clause="MODULE-4", what=f"{what}: output (0 where dropped, x/(1-p) where kept)")
    if p == 0.0 and not bool(kept.all()):
        fail("MODULE-4", f"{what}: p=0 must keep every element, but {int((~kept).sum())} were dropped")
    if p == 1.0 and bool(kept.any()):
        fail("MODULE-4", f"{what}: p=1 must drop every element, but {int(kept.sum())} were kept")
    if spatial_dims is not None:  # a channel: out[i, j] of a batch, out[j] of an unbatched input
        per_channel = kept.flatten(kept.dim() - spatial_dims)
        mixed = per_channel.any(-1) & ~per_channel.all(-1)
        if bool(mixed.any()):
            fail("MODULE-4", f"{what}: channels {mixed.nonzero().tolist()} are partly dropped; whole channels must be zeroed")


# ----------------------------------------------------------------------------- MODULE-5, -6

#: BatchNorm kind -> (class, number of spatial dims after (N, C))
BATCHNORMS = {
    "BatchNorm1d (N, C)": (nn.BatchNorm1d, 0),
    "BatchNorm1d (N, C, L)": (nn.BatchNorm1d, 1),
    "BatchNorm2d": (nn.BatchNorm2d, 2),
    "BatchNorm3d": (nn.BatchNorm3d, 3),
}


def _batchnorm(data, device, kind: str, *, min_values_per_channel: int):
    cls, spatial_dims = BATCHNORMS[kind]
    channels = data.draw(st.integers(1, 3), label="channels")
    momentum = data.draw(st.floats(0.0, 1.0), label="momentum")
    bn = cls(channels, momentum=momentum).to(device=device, dtype=torch.float64)
    fill_drawn(bn, data, device, label="bn")
    with torch.no_grad():
        bn.running_mean.copy_(data.draw(tensors(dtype=torch.float64, shape=(channels,), device=device), label="initial running_mean"))
        bn.running_var.copy_(data.draw(tensors(dtype=torch.float64, shape=(channels,), device=device, low=0.1, high=3.0), label="initial running_var"))
        bn.num_batches_tracked.fill_(data.draw(st.integers(0, 5), label="initial num_batches_tracked"))
    spatial = tuple(data.draw(st.lists(st.integers(1, 3), min_size=spatial_dims, max_size=spatial_dims), label="spatial sizes"))
    per_sample = torch.Size(spatial).numel()
    smallest_batch = -(-min_values_per_channel // per_sample)  # enough values per channel by construction
    return bn, (data.draw(st.integers(smallest_batch, 4), label="batch size"), channels) + spatial


def _per_channel(stat: torch.Tensor, ndim: int) -> torch.Tensor:
    return stat.reshape((1, -1) + (1,) * (ndim - 2))


@pytest.mark.spec("MODULE-5")
@pytest.mark.parametrize("kind", sorted(BATCHNORMS))
@given(data=st.data())
def test_batchnorm_in_train_mode_uses_batch_stats_and_updates_running_stats(device, mode, kind, data):
    bn, shape = _batchnorm(data, device, kind, min_values_per_channel=2)
    compiled = mode.module(bn)  # compiled: the running statistics are updated inside compiled code
    steps = data.draw(st.integers(1, 3), label="forward passes")
    for step in range(steps):
        x = data.draw(tensors(dtype=torch.float64, shape=shape, device=device), label=f"batch {step}")
        dims = [d for d in range(x.dim()) if d != 1]
        mean, biased, unbiased = x.mean(dims), x.var(dims, unbiased=False), x.var(dims, unbiased=True)
        running_mean, running_var, tracked = bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)
        y = compiled(x)
        what = f"{kind}(momentum={bn.momentum}) in training mode, pass {step + 1}, input of shape {shape}{_in(mode)}"
        expected = (x - _per_channel(mean, x.dim())) / torch.sqrt(_per_channel(biased, x.dim()) + bn.eps) * _per_channel(bn.weight, x.dim()) + _per_channel(bn.bias, x.dim())
        assert_close(y, expected, clause="MODULE-5", what=f"{what}: output vs (x - batch mean) / sqrt(biased batch var + eps) * weight + bias")
        m = bn.momentum
        assert_close(bn.running_mean, (1 - m) * running_mean + m * mean, clause="MODULE-5", what=f"{what}: running_mean")
        assert_close(bn.running_var, (1 - m) * running_var + m * unbiased, clause="MODULE-5", what=f"{what}: running_var (unbiased batch variance)")
        assert_equal(int(bn.num_batches_tracked), tracked + 1, clause="MODULE-5", what=f"{what}: num_batches_tracked")


@pytest.mark.spec("MODULE-6")
@pytest.mark.parametrize("route", sorted(EVAL_ROUTES))
@given(data=st.data())
def test_batchnorm_in_eval_mode_uses_running_stats_and_keeps_them(device, mode, route, data):
    kind = data.draw(st.sampled_from(sorted(BATCHNORMS)), label="BatchNorm layer")
    bn, shape = _batchnorm(data, device, kind, min_values_per_channel=1)
    running_mean, running_var, tracked = bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()
    module = EVAL_ROUTES[route](mode.module(bn))  # compiled: the layer, then switched
    x = data.draw(tensors(dtype=torch.float64, shape=shape, device=device), label="batch")
    y = module(x)
    what = f"{kind} in eval mode via {route}, input of shape {shape}{_in(mode)}"
    expected = (x - _per_channel(running_mean, x.dim())) / torch.sqrt(_per_channel(running_var, x.dim()) + bn.eps) * _per_channel(bn.weight, x.dim()) + _per_channel(bn.bias, x.dim())
    assert_close(y, expected, clause="MODULE-6", what=f"{what}: output vs (x - running_mean) / sqrt(running_var + eps) * weight + bias")
    assert_close(bn.running_mean, running_mean, clause="MODULE-6", what=f"{what}: running_mean after the forward pass", rtol=0, atol=0)
    assert_close(bn.running_var, running_var, clause="MODULE-6", what=f"{what}: running_var after the forward pass", rtol=0, atol=0)
    assert_close(bn.num_batches_tracked, tracked, clause="MODULE-6", what=f"{what}: num_batches_tracked after the forward pass", rtol=0, atol=0)


# ----------------------------------------------------------------------------- MODULE-7


@pytest.mark.spec("MODULE-7")
@pytest.mark.parametrize("form", sorted(FREEZE_FORMS))
@given(data=st.data())
def test_frozen_parameters_get_no_grad(device, mode, form, data):
    net = draw_mlp(data, device)
    compiled = mode.module(net)  # compiled: frozen after torch.compile(net), before its first call
    frozen = _freeze_some(data, net, form=form, keep_one_of=[name for name, _ in net.named_parameters()])
    _loss(compiled, _batch(data, net, device)).backward()
    for name, param in net.named_parameters():
        if frozen[name]:
            assert_equal(param.grad, None, clause="MODULE-7", what=f".grad of {name}, frozen with `{form}`, after backward{_in(mode)}")
        elif param.grad is None:
            fail("MODULE-7", f".grad of trainable {name} should be a tensor after backward{_in(mode)} (frozen: {frozen}), but it is None")


# ----------------------------------------------------------------------------- MODULE-8 .. -10

#: optimizer -> fn(params, data) drawing its hyperparameters
OPTIMIZERS = {
    "SGD": lambda params, data: torch.optim.SGD(params, lr=data.draw(st.floats(1e-3, 1.0), label="lr")),
    "SGD(momentum, weight_decay)": lambda params, data: torch.optim.SGD(
        params,
        lr=data.draw(st.floats(1e-3, 1.0), label="lr"),
        momentum=data.draw(st.floats(0.1, 0.95), label="momentum"),
        weight_decay=data.draw(st.floats(0.01, 0.5), label="weight_decay"),
    ),
    "Adam": lambda params, data: torch.optim.Adam(params, lr=data.draw(st.floats(1e-3, 1.0), label="lr")),
    "AdamW": lambda params, data: torch.optim.AdamW(params, lr=data.draw(st.floats(1e-3, 1.0), label="lr"), weight_decay=data.draw(st.floats(0.01, 0.5), label="weight_decay")),
}


def _train_steps(net, optimizer, data, device, *, steps: int, forward: nn.Module | None = None) -> None:
    """``steps`` training steps of ``net``, its forward pass through ``forward`` (a compiled ``net``) if given."""
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        _loss(forward or net, _batch(data, net, device, label=f"batch {step}")).backward()
        optimizer.step()


@pytest.mark.spec("MODULE-8")
@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
@given(data=st.data())
def test_step_skips_parameters_without_grad(device, mode, optimizer_name, data):
    net = draw_mlp(data, device)
    net.unused = nn.Parameter(data.draw(tensors(dtype=torch.float64, shape=(2,), device=device), label="unused parameter"))
    frozen = _freeze_some(data, net, keep_one_of=[name for name, _ in net.named_parameters() if name != "unused"])
    skipped = [name for name, flag in frozen.items() if flag or name == "unused"]
    before = dict(zip(frozen, _snapshot(net.parameters())))
    optimizer = OPTIMIZERS[optimizer_name](net.parameters(), data)
    steps = data.draw(st.integers(1, 3), label="steps")
    _train_steps(net, optimizer, data, device, steps=steps, forward=mode.module(net))  # compiled: the forward pass
    params = dict(net.named_parameters())
    for name in skipped:
        why = "frozen" if frozen[name] else "not used by the loss"
        assert_equal(params[name].grad, None, clause="MODULE-8", what=f".grad of {name} ({why}){_in(mode)}")
        assert_close(params[name], before[name], clause="MODULE-8", what=f"{name} ({why}, .grad None) after {steps} {optimizer_name} steps{_in(mode)}", rtol=0, atol=0)


def _fine_tuning_model(data, device) -> nn.Sequential:
    """The seed's resnet recipe in small: a convolutional feature extractor and an `fc` head."""
    features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return fill_drawn(nn.Sequential(OrderedDict(features=features, fc=nn.Linear(4, 5))).to(device=device, dtype=torch.float64), data, device, label="pretrained")


#: over which parameters the seed's fine-tuning optimizer is built
FINE_TUNING_PARAMS = {
    "model.fc.parameters()": lambda model: model.fc.parameters(),
    "model.parameters()": lambda model: model.parameters(),
}


@pytest.mark.spec("MODULE-7", "MODULE-8")
@pytest.mark.parametrize("over", sorted(FINE_TUNING_PARAMS))
@pytest.mark.parametrize("form", sorted(FREEZE_FORMS))
@given(data=st.data())
def test_seed_fine_tuning_recipe_trains_only_the_new_head(device, mode, form, over, data):
    model = _fine_tuning_model(data, device)
    for param in model.parameters():
        FREEZE_FORMS[form](param)
    model.fc = fill_drawn(nn.Linear(4, 3).to(device=device, dtype=torch.float64), data, device, label="new fc")  # trainable by default
    compiled = mode.module(model)  # compiled: the model with its new head, as fine-tuning compiles it
    backbone = dict(model.features.named_parameters())
    before = {name: p.detach().clone() for name, p in backbone.items()}
    head_before = _snapshot(model.fc.parameters())
    optimizer = torch.optim.SGD(FINE_TUNING_PARAMS[over](model), lr=data.draw(st.floats(1e-3, 1.0), label="lr"), momentum=0.9)
    steps = data.draw(st.integers(1, 3), label="steps")
    for step in range(steps):
        images = data.draw(tensors(dtype=torch.float64, shape=st.tuples(st.integers(1, 3), st.just(3), st.integers(1, 4), st.integers(1, 4)), device=device), label=f"images {step}")
        targets = torch.tensor(data.draw(st.lists(st.integers(0, 2), min_size=images.shape[0], max_size=images.shape[0]), label=f"targets {step}"), device=device)
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(compiled(images), targets).backward()
        for name, param in backbone.items():
            assert_equal(param.grad, None, clause="MODULE-7", what=f".grad of frozen features.{name} (`{form}`) after backward{_in(mode)}")
        for name, param in model.fc.named_parameters():
            if param.grad is None:
                fail("MODULE-7", f".grad of the new head's fc.{name} should be a tensor after backward{_in(mode)}, but it is None")
        optimizer.step()
    for name, param in backbone.items():
        assert_close(param, before[name], clause="MODULE-8", what=f"frozen features.{name} after {steps} SGD(momentum=0.9) steps over {over}{_in(mode)}", rtol=0, atol=0)
    changed = any(not torch.equal(p, b) for p, b in zip(model.fc.parameters(), head_before))
    assert_equal(changed, True, clause="MODULE-8", what=f"some parameter of the new head changed after {steps} steps over {over}{_in(mode)}")


#: optimizers with weight decay -> fn(params, lr, weight_decay)
ZERO_GRAD_OPTIMIZERS = {
    "SGD(weight_decay)": lambda params, lr, wd: torch.optim.SGD(params, lr=lr, weight_decay=wd),
    "SGD(momentum, weight_decay)": lambda params, lr, wd: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd),
    "Adam(weight_decay)": lambda params, lr, wd: torch.optim.Adam(params, lr=lr, weight_decay=wd),
    "AdamW(weight_decay)": lambda params, lr, wd: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
}


@pytest.mark.spec("MODULE-9")
@pytest.mark.parametrize("optimizer_name", sorted(ZERO_GRAD_OPTIMIZERS))
@given(data=st.data())
def test_step_updates_a_parameter_with_a_zero_grad(device, mode, optimizer_name, data):
    param = nn.Parameter(data.draw(tensors(dtype=torch.float64, shape=st.tuples(st.integers(1, 4)), device=device), label="parameter"))
    lr = data.draw(st.floats(1e-3, 1.0), label="lr")
    wd = data.draw(st.floats(0.01, 0.5), label="weight_decay")
    before = param.detach().clone()
    param.grad = torch.zeros_like(param)
    mode.run(ZERO_GRAD_OPTIMIZERS[optimizer_name]([param], lr, wd).step)  # compiled: the step itself
    what = f"{optimizer_name} step (lr={lr}, weight_decay={wd}) on a parameter whose .grad is zeros{_in(mode)}"
    if optimizer_name == "SGD(weight_decay)":
        assert_close(param, before - lr * wd * before, clause="MODULE-9", what=f"{what}: p - lr * wd * p")
    unchanged = (param.detach() == before) & (before != 0)
    if bool(unchanged.any()):
        fail("MODULE-9", f"{what}: the zero gradient must not be skipped, but non-zero elements {unchanged.nonzero().flatten().tolist()} kept their values {before[unchanged].tolist()}")


def _draw_held(data, named: list, *, not_all: bool = False) -> list[bool]:
    """Which of the named parameters an optimizer holds: at least one (and, with ``not_all``, not all)."""
    names = [name for name, _ in named]
    return _draw_subset(data, names, label="held by the optimizer", one_in=names, one_out=names if not_all else ())


@pytest.mark.spec("MODULE-10")
@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
@given(data=st.data())
def test_optimizer_over_a_subset_changes_only_that_subset(device, mode, optimizer_name, data):
    net = draw_mlp(data, device)
    named = list(net.named_parameters())
    held = _draw_held(data, named, not_all=True)  # a parameter outside the optimizer: what the clause is about
    optimizer = OPTIMIZERS[optimizer_name]([p for (_, p), h in zip(named, held) if h], data)
    _loss(mode.module(net), _batch(data, net, device)).backward()  # compiled: the forward pass
    before, grads = _snapshot(net.parameters()), _snapshot(p.grad for p in net.parameters())
    optimizer.step()
    for (name, param), h, old, grad in zip(named, held, before, grads):
        if h:
            continue
        what = f"{name}, not held by the {optimizer_name} optimizer (held: {[n for (n, _), x in zip(named, held) if x]}){_in(mode)}"
        assert_close(param, old, clause="MODULE-10", what=f"{what}: value after step()", rtol=0, atol=0)
        assert_close(param.grad, grad, clause="MODULE-10", what=f"{what}: .grad after step()", rtol=0, atol=0)


# ----------------------------------------------------------------------------- MODULE-11, -12


@pytest.mark.spec("MODULE-11")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@given(data=st.data())
def test_seed_sgd_step_with_lr_1_subtracts_the_gradient(device, mode, dtype, data):
    net = draw_mlp(data, device, dtype=dtype)
    for param in net.parameters():
        param.data.fill_(0.1)  # the seed's initialisation
    batch = _batch(data, net, device, dtype=dtype)
    classes = net[-1].out_features
    targets = torch.tensor(data.draw(st.lists(st.integers(0, classes - 1), min_size=batch.shape[0], max_size=batch.shape[0]), label="targets"), device=device)
    mode.run(lambda batch, targets: nn.functional.cross_entropy(net(batch), targets), batch, targets).backward()  # compiled: the loss
    expected = [p.detach() - p.grad for p in net.parameters()]
    torch.optim.SGD(net.parameters(), lr=1.0).step()
    for (name, param), want in zip(net.named_parameters(), expected):
        assert_close(param, want, clause="MODULE-11", what=f"{name} (initialised to 0.1) after SGD(lr=1.0).step(): old - grad{_in(mode)}", **_exact_on_cpu(device))


def _closure(optimizer, compute_loss):
    def closure():
        optimizer.zero_grad()
        loss = compute_loss()
        loss.backward()
        return loss

    return closure


#: how a step gets its gradient: form -> fn(optimizer, compute_loss) computing it and stepping
STEP_FORMS = {
    "loss.backward(); optimizer.step()": lambda optimizer, compute_loss: (compute_loss().backward(), optimizer.step()),
    "optimizer.step(closure)": lambda optimizer, compute_loss: optimizer.step(_closure(optimizer, compute_loss)),
}


@pytest.mark.spec("MODULE-11")
@pytest.mark.parametrize("form", sorted(STEP_FORMS))
@given(data=st.data())
def test_sgd_step_subtracts_lr_times_the_gradient(device, mode, form, data):
    net = draw_mlp(data, device)
    batch = _batch(data, net, device)
    lr = data.draw(st.floats(1e-4, 10.0), label="lr")
    before = _snapshot(net.parameters())
    compiled = mode.module(net)  # compiled: the forward pass; the step (and its closure) stay eager
    STEP_FORMS[form](torch.optim.SGD(net.parameters(), lr=lr), lambda: _loss(compiled, batch))
    for (name, param), old in zip(net.named_parameters(), before):
        what = f"{name} after `{form}` with SGD(lr={lr}){_in(mode)}"
        if param.grad is None:
            fail("MODULE-11", f"{what}: the parameter has no gradient to step with")
        assert_close(param, old - lr * param.grad, clause="MODULE-11", what=f"{what}: old - lr * grad")


def _squared_loss(X: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d2l's squared_loss of the linear model ``X @ w + b``, summed."""
    return ((X @ w + b - y) ** 2 / 2).sum()


def _manual_sgd(params: list, lr: float, batch_size: int) -> None:
    """d2l's sgd: ``p -= lr * p.grad / batch_size`` for every parameter, under no_grad."""
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size


@pytest.mark.spec("MODULE-12")
@given(data=st.data())
def test_manual_sgd_equals_optimizer_sgd_with_lr_over_batch_size(device, mode, data):
    features = data.draw(st.integers(1, 4), label="features")
    batch_size = data.draw(st.integers(1, 10), label="batch_size")
    lr = data.draw(st.floats(1e-3, 1.0), label="lr")
    w = data.draw(tensors(dtype=torch.float64, shape=(features, 1), device=device, requires_grad=True), label="w")
    b = data.draw(tensors(dtype=torch.float64, shape=(1,), device=device, requires_grad=True), label="b")
    manual = [w, b]
    optimized = [t.detach().clone().requires_grad_() for t in manual]
    optimizer = torch.optim.SGD(optimized, lr=lr / batch_size)
    epochs = data.draw(st.integers(1, 3), label="epochs")
    # compiled: the loss, and the hand-written update (one compiled function each, reused every epoch); the
    # optimizer's step and the zeroing of the manual gradients stay eager (`p.grad.zero_()` after `p -= ...`
    # in the same compiled frame makes dynamo fall back to eager on torch 2.13)
    squared_loss, manual_sgd = mode.compile(_squared_loss), mode.compile(_manual_sgd)
    for epoch in range(epochs):
        X = data.draw(tensors(dtype=torch.float64, shape=(batch_size, features), device=device), label=f"X {epoch}")
        y = data.draw(tensors(dtype=torch.float64, shape=(batch_size, 1), device=device), label=f"y {epoch}")
        for params in (manual, optimized):
            squared_loss(X, *params, y).backward()
        manual_sgd(manual, lr, batch_size)
        for param in manual:
            param.grad.zero_()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for name, mine, theirs in zip(("w", "b"), manual, optimized):
        assert_close(mine, theirs, clause="MODULE-12", what=f"{name} after {epochs} epoch(s) of `p -= lr * p.grad / batch_size` (lr={lr}, batch_size={batch_size}) vs SGD(lr=lr/batch_size){_in(mode)}")


# ----------------------------------------------------------------------------- MODULE-13


@pytest.mark.spec("MODULE-13")
@pytest.mark.parametrize("set_to_none", [True, False])
@given(data=st.data())
def test_zero_grad_covers_the_optimizers_or_the_modules_parameters(device, mode, set_to_none, data):
    net = draw_mlp(data, device)
    named = list(net.named_parameters())
    held = _draw_held(data, named)
    optimizer = torch.optim.SGD([p for (_, p), h in zip(named, held) if h], lr=0.1)
    _loss(mode.module(net), _batch(data, net, device)).backward()  # compiled: the gradients come through a compiled net
    grads = {name: p.grad.clone() for name, p in named}

    def check(name: str, param: torch.Tensor, reset: bool, call: str) -> None:
        if not reset:
            assert_close(param.grad, grads[name], clause="MODULE-13", what=f".grad of {name}, not held by the optimizer, after {call}{_in(mode)}", rtol=0, atol=0)
        elif set_to_none:
            assert_equal(param.grad, None, clause="MODULE-13", what=f".grad of {name} after {call}{_in(mode)}")
        else:
            assert_close(param.grad, torch.zeros_like(param), clause="MODULE-13", what=f".grad of {name} after {call}{_in(mode)}", rtol=0, atol=0)

    optimizer.zero_grad(set_to_none=set_to_none)
    for (name, param), h in zip(named, held):
        check(name, param, h, f"optimizer.zero_grad(set_to_none={set_to_none}) (held: {[n for (n, _), x in zip(named, held) if x]})")
    net.zero_grad(set_to_none=set_to_none)
    for name, param in named:
        check(name, param, True, f"net.zero_grad(set_to_none={set_to_none})")


@pytest.mark.spec("MODULE-13")
@pytest.mark.parametrize("set_to_none", [True, False])
@given(data=st.data())
def test_seed_module_and_optimizer_zero_grad_agree_when_the_optimizer_holds_everything(device, mode, set_to_none, data):
    first = draw_mlp(data, device)
    second = copy.deepcopy(first)
    batch = _batch(data, first, device)
    for net in (first, second):
        _loss(mode.module(net), batch).backward()  # compiled: the gradients come through a compiled net
    torch.optim.SGD(first.parameters(), lr=1.0).zero_grad(set_to_none=set_to_none)
    second.zero_grad(set_to_none=set_to_none)
    for (name, a), b in zip(first.named_parameters(), second.parameters()):
        what = f"{name}.grad after optimizer.zero_grad(set_to_none={set_to_none}) vs model.zero_grad(set_to_none={set_to_none}){_in(mode)}"
        if a.grad is None or b.grad is None:
            assert_equal((a.grad is None, b.grad is None), (True, True), clause="MODULE-13", what=f"{what}: (is None, is None)")
        else:
            assert_close(a.grad, b.grad, clause="MODULE-13", what=what, rtol=0, atol=0)


# ----------------------------------------------------------------------------- MODULE-14

LOSSES = ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss")


def _regression(data, device):
    batch = data.draw(st.integers(1, 6), label="batch size")
    width = data.draw(st.integers(1, 4), label="output width")
    features = data.draw(st.integers(1, 3), label="input features")
    model = fill_drawn(nn.Linear(features, width).to(device=device, dtype=torch.float64), data, device, label="model")
    X = data.draw(tensors(dtype=torch.float64, shape=(batch, features), device=device), label="X")
    y = data.draw(tensors(dtype=torch.float64, shape=(batch, width), device=device), label="y")
    return model, X, y


@pytest.mark.spec("MODULE-14")
@pytest.mark.parametrize("loss_name", LOSSES)
@given(data=st.data())
def test_sum_reduction_gives_n_times_the_mean_gradients(device, mode, loss_name, data):
    model, X, y = _regression(data, device)
    n = y.numel()
    results = {}
    compiled = mode.module(model)  # compiled: the model and each loss module
    for reduction in ("sum", "mean"):
        out = compiled(X)
        loss = mode.module(getattr(nn, loss_name)(reduction=reduction))(out, y)
        results[reduction] = (loss, *torch.autograd.grad(loss, [out, *model.parameters()]))
    what = f"nn.{loss_name} on outputs of shape {tuple(y.shape)} (N = {n} elements){_in(mode)}"
    names = ["loss", "gradient w.r.t. the output", "gradient w.r.t. weight", "gradient w.r.t. bias"]
    for name, total, mean in zip(names, results["sum"], results["mean"]):
        assert_close(total, n * mean, clause="MODULE-14", what=f"{what}: {name} with reduction='sum' vs N x reduction='mean'")


def _criterion_of_model(criterion: nn.Module, model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return criterion(model(X), y)


@pytest.mark.spec("MODULE-14")
@pytest.mark.parametrize("loss_name", LOSSES)
@given(data=st.data())
def test_sgd_with_lr_over_n_on_sum_matches_lr_on_mean(device, mode, loss_name, data):
    model, X, y = _regression(data, device)
    twin = nn.Linear(model.in_features, model.out_features).to(device=device, dtype=torch.float64)
    twin.load_state_dict(model.state_dict())
    lr = data.draw(st.floats(1e-3, 1.0), label="lr")
    n = y.numel()
    for net, reduction, rate in ((model, "mean", lr), (twin, "sum", lr / n)):
        criterion = getattr(nn, loss_name)(reduction=reduction)
        mode.run(_criterion_of_model, criterion, net, X, y).backward()  # compiled: the model and its loss, one program
        torch.optim.SGD(net.parameters(), lr=rate).step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert_close(b, a, clause="MODULE-14", what=f"{name} after SGD(lr/N={lr}/{n}) on nn.{loss_name}(reduction='sum') vs SGD(lr={lr}) on reduction='mean', outputs {tuple(y.shape)}{_in(mode)}")


# ----------------------------------------------------------------------------- MODULE-15

#: attribute kinds a user module may be given, and whether they register parameters
ATTRIBUTE_KINDS = ("Parameter", "frozen Parameter", "plain tensor", "tensor requiring grad", "buffer", "Linear", "Sequential(Linear)")
NAMES = ("w", "b", "alpha", "zeta", "layer1", "fc", "a", "hidden")


def _assign(module: nn.Module, name: str, kind: str, device: str):
    """Assign one attribute; returns the parameters it registers, as (name, tensor) pairs."""
    if kind in ("Parameter", "frozen Parameter"):
        param = nn.Parameter(torch.zeros(2, device=device), requires_grad=kind == "Parameter")
        setattr(module, name, param)
        return [(name, param)]
    if kind in ("plain tensor", "tensor requiring grad"):
        setattr(module, name, torch.zeros(2, device=device, requires_grad=kind == "tensor requiring grad"))
        return []
    if kind == "buffer":
        module.register_buffer(name, torch.zeros(2, device=device))
        return []
    sub = nn.Linear(2, 2).to(device)
    child = sub if kind == "Linear" else nn.Sequential(sub)
    setattr(module, name, child)
    prefix = name if kind == "Linear" else f"{name}.0"
    return [(f"{prefix}.weight", sub.weight), (f"{prefix}.bias", sub.bias)]


@pytest.mark.spec("MODULE-15")
@given(data=st.data())
def test_named_parameters_lists_registered_parameters_in_order(device, mode, data):
    names = data.draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True), label="attribute names")
    kinds = data.draw(st.lists(st.sampled_from(ATTRIBUTE_KINDS), min_size=len(names), max_size=len(names)), label="attribute kinds")
    module = nn.Module()
    own, nested = [], []
    for name, kind in zip(names, kinds):
        registered = _assign(module, name, kind, device)
        (own if kind.endswith("Parameter") else nested).extend(registered)
    expected = own + nested
    plan = ", ".join(f"{n}={k}" for n, k in zip(names, kinds))
    actual, params = mode.run(_listed_parameters, module)  # compiled: listed inside a compiled function
    assert_equal([n for n, _ in actual], [n for n, _ in expected], clause="MODULE-15", what=f"names from named_parameters() after assigning {plan}{_in(mode)}")
    for (name, got), (_, want) in zip(actual, expected):
        assert_equal(got is want, True, clause="MODULE-15", what=f"named_parameters()[{name!r}] is the assigned Parameter{_in(mode)}")
    assert_equal([id(p) for p in params], [id(p) for _, p in expected], clause="MODULE-15", what=f"identities and order of parameters() after assigning {plan}{_in(mode)}")


def _listed_parameters(module: nn.Module) -> tuple[list, list]:
    """``module.named_parameters()`` and ``module.parameters()``, as lists."""
    return list(module.named_parameters()), list(module.parameters())


def _same_submodule_twice(device):
    layer = nn.Linear(2, 2).to(device)
    return nn.Sequential(layer, nn.ReLU(), layer)


def _tied_weights(device):
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)).to(device)
    net[1].weight = net[0].weight
    return net


def _one_parameter_on_two_attributes(device):
    module = nn.Module()
    module.z = nn.Parameter(torch.zeros(2, device=device))
    module.a = module.z
    return module


#: ways one Parameter becomes reachable under two names: name -> (build(device), the names expected)
SHARING = {
    "same submodule twice": (_same_submodule_twice, ["0.weight", "0.bias"]),
    "weight tied between two Linears": (_tied_weights, ["0.weight", "0.bias", "1.bias"]),
    "one Parameter on two attributes": (_one_parameter_on_two_attributes, ["z"]),
}


@pytest.mark.spec("MODULE-15")
@pytest.mark.parametrize("sharing", sorted(SHARING))
def test_a_shared_parameter_is_listed_once(device, mode, sharing):
    build, expected = SHARING[sharing]
    module = build(device)
    named, params = mode.run(_listed_parameters, module)  # compiled: listed inside a compiled function
    assert_equal([n for n, _ in named], expected, clause="MODULE-15", what=f"names from named_parameters() with a {sharing}{_in(mode)}")
    assert_equal(len({id(p) for p in params}), len(params), clause="MODULE-15", what=f"parameters() has no duplicates with a {sharing}{_in(mode)}")
