"""The parts of a training step with a cost claim: zeroing gradients, retaining the graph, accumulating gradients.

* ``zero_grad(set_to_none=True)`` "will in general have lower memory footprint,
  and can modestly improve performance" (``torch.optim.Optimizer.zero_grad``
  docs; ACCUM-4/ACCUM-5): timed as zero_grad + forward + backward, the cycle
  it affects; the bytes of ``.grad`` left after zeroing are recorded.
* ``retain_graph=True`` keeps the saved tensors alive after backward (seed
  004_a4e03518373956aa.txt; BWD-1/BWD-2, SAVED-5): the bytes still held are
  recorded beside the time of backward.
* Accumulating gradients over micro-batches (ACCUM-2, each backward adds to
  ``.grad``) trades time for memory: four micro-batches of 16 against one
  batch of 64, then one optimizer step.
"""

from __future__ import annotations

import pytest
import torch

from conformance.testlib.networks import BENCHMARK_NETWORKS
from conformance.testlib.saved_tensors import record_saved_tensors, tensor_bytes


def _mlp_and_optimizer(device):
    net = BENCHMARK_NETWORKS["mlp"](device)
    return net, torch.optim.SGD(net.module.parameters(), lr=1e-3)


def _grad_bytes(module: torch.nn.Module) -> int:
    return sum(tensor_bytes(p.grad) for p in module.parameters() if p.grad is not None)


@pytest.mark.spec("ACCUM-4", "ACCUM-5")
@pytest.mark.parametrize("set_to_none", [False, True], ids=["set_to_none=False", "set_to_none=True"])
def test_zero_grad_then_backward(bench, device, set_to_none):
    net, optimizer = _mlp_and_optimizer(device)

    def cycle():
        optimizer.zero_grad(set_to_none=set_to_none)
        net.forward().pow(2).sum().backward()

    cycle()
    optimizer.zero_grad(set_to_none=set_to_none)
    bench.memory(grad_after_zero_grad_bytes=_grad_bytes(net.module))
    bench.compare(f"zero_grad + forward + backward ({net.description})", f"set_to_none={set_to_none}", baseline="set_to_none=False")(cycle)


@pytest.mark.spec("BWD-1", "BWD-2", "SAVED-5")
@pytest.mark.parametrize("retain_graph", [False, True], ids=["retain_graph=False", "retain_graph=True"])
def test_backward(bench, device, retain_graph):
    net = BENCHMARK_NETWORKS["mlp"](device)

    def loss():
        return (net.forward().pow(2).sum(),)

    with record_saved_tensors() as saved:
        (y,) = loss()
    y.backward(retain_graph=retain_graph)
    bench.memory(saved_held_after_backward_bytes=saved.held_bytes(), saved_intermediate_held_after_backward_bytes=saved.held_bytes(intermediate_only=True))
    del y
    backward = lambda y: y.backward(retain_graph=retain_graph)  # noqa: E731
    bench.compare(f"backward ({net.description})", f"retain_graph={retain_graph}", baseline="retain_graph=False")
    bench.with_setup(backward, loss, rounds=200)


#: variant -> number of micro-batches the 64 samples are split into
ACCUMULATION = {"1 batch of 64": 1, "4 accumulated micro-batches of 16": 4}


@pytest.mark.spec("ACCUM-2", "MODULE-11")
@pytest.mark.parametrize("variant", list(ACCUMULATION))
def test_training_step(bench, device, variant):
    net, optimizer = _mlp_and_optimizer(device)
    chunks = ACCUMULATION[variant]
    micro_batches = net.batch.chunk(chunks)
    target = torch.zeros(net.batch.shape[0], 10, device=device).chunk(chunks)

    def step():
        optimizer.zero_grad()
        for inputs, wanted in zip(micro_batches, target):
            loss = torch.nn.functional.mse_loss(net.module(inputs), wanted, reduction="sum")
            loss.backward()  # adds into .grad (ACCUM-2)
        optimizer.step()

    with record_saved_tensors() as saved:
        net.module(micro_batches[0]).sum()
    bench.memory(saved_intermediate_per_forward_bytes=saved.intermediate_bytes)
    bench.compare(f"training step, 64 samples ({net.description})", variant, baseline="1 batch of 64")(step)
