"""Forward of a small MLP and a small conv net in grad mode, under no_grad and under inference_mode.

The cost claim (seed 000_11918659c5b97dba.txt; autograd notes, "Locally
disabling gradient computation"): evaluation inside ``no_grad`` or
``inference_mode`` saves the computation and memory of recording the graph.
The memory side is exact and checked by SAVED-2/SAVED-3; here it is recorded
beside the time (tensors saved for backward, and the CUDA allocator's peak).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from conformance.benchmarks.conftest import peak_memory
from conformance.testlib.networks import BENCHMARK_NETWORKS
from conformance.testlib.saved_tensors import record_saved_tensors

#: variant -> the context the forward runs in; "grad" is the baseline of the ratios.
#: (torch's classes are looked up when called, so a patched torch is the one timed.)
MODES = {
    "grad": lambda: contextlib.nullcontext(),
    "no_grad": lambda: torch.no_grad(),
    "inference_mode": lambda: torch.inference_mode(),
}


@pytest.mark.spec("GRADMODE-1", "GRADMODE-14", "SAVED-2", "SAVED-3")
@pytest.mark.parametrize("network", sorted(BENCHMARK_NETWORKS))
@pytest.mark.parametrize("mode", list(MODES))
def test_forward(bench, device, network, mode):
    net = BENCHMARK_NETWORKS[network](device)
    enter = MODES[mode]

    def forward():
        with enter():
            return net.forward()

    with record_saved_tensors() as saved:
        output = forward()  # kept alive: the graph (and what it saved) lives as long as the output
    bench.memory(
        saved_tensors=saved.count,
        saved_bytes=saved.held_bytes(),
        saved_intermediate_bytes=saved.held_bytes(intermediate_only=True),
        peak_bytes=peak_memory(device, forward),
    )
    del output
    bench.compare(f"forward {net.description}", mode, baseline="grad")(forward)
