"""Small networks: drawn ones for the conformance tests, fixed ones for the benchmarks.

Both kinds are built by the same two constructors, :func:`mlp` and
:func:`convnet`, so a benchmark measures the same shape of network a test
checks.  Parameter values are set from a seeded generator, never from torch's
global RNG, so building a network does not disturb the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from .strategies import as_strategy, seeds

nn = torch.nn

__all__ = ["BENCHMARK_NETWORKS", "Network", "convnet", "mlp", "networks"]


def _fill_from_seed(module: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.rand(param.shape, generator=generator, dtype=torch.float64) * 2 - 1)
    return module


def mlp(widths: Sequence[int], *, seed: int = 0) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` through ``widths`` (input width first)."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(widths) - 2:
            layers.append(nn.ReLU())
    return _fill_from_seed(nn.Sequential(*layers), seed)


def convnet(channels: Sequence[int], classes: int, *, seed: int = 0) -> nn.Sequential:
    """``Conv2d(3x3) -> ReLU`` through ``channels``, then global average pooling and a Linear head."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(channels, channels[1:]):
        layers += [nn.Conv2d(fan_in, fan_out, kernel_size=3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels[-1], classes)]
    return _fill_from_seed(nn.Sequential(*layers), seed)


@dataclass
class Network:
    """A network and an input batch for it, on one device and dtype."""

    kind: str
    module: nn.Module
    batch: torch.Tensor
    description: str

    def __repr__(self) -> str:
        return f"<{self.description}, batch {str(self.batch.dtype).replace('torch.', '')}{list(self.batch.shape)}>"

    def forward(self) -> torch.Tensor:
        return self.module(self.batch)


def _batch(shape: Sequence[int], *, seed: int, dtype: torch.dtype, device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(tuple(shape), generator=generator, dtype=torch.float64) * 2 - 1).to(device=device, dtype=dtype)


def _build(kind: str, sizes: dict, *, seed: int, dtype: torch.dtype, device) -> Network:
    if kind == "mlp":
        module = mlp(sizes["widths"], seed=seed)
        batch_shape = (sizes["batch"], sizes["widths"][0])
        description = f"mlp {'-'.join(map(str, sizes['widths']))}"
    elif kind == "convnet":
        module = convnet(sizes["channels"], sizes["classes"], seed=seed)
        batch_shape = (sizes["batch"], sizes["channels"][0], sizes["side"], sizes["side"])
        description = f"convnet {'-'.join(map(str, sizes['channels']))} -> {sizes['classes']}"
    else:
        raise ValueError(f"unknown network kind {kind!r}")
    module = module.to(device=device, dtype=dtype)
    return Network(kind, module, _batch(batch_shape, seed=seed + 1, dtype=dtype, device=device), description)


#: The fixed networks the benchmarks time (sizes chosen so one forward takes
#: tens to hundreds of microseconds on a CPU core: big enough that autograd's
#: bookkeeping is not all that is measured, small enough for a one-minute run).
BENCHMARK_NETWORKS: dict[str, Callable[..., Network]] = {
    "mlp": lambda device, dtype=torch.float32: _build(
        "mlp", {"widths": (256, 256, 256, 10), "batch": 64}, seed=0, dtype=dtype, device=device
    ),
    "convnet": lambda device, dtype=torch.float32: _build(
        "convnet", {"channels": (3, 16, 32), "classes": 10, "batch": 8, "side": 32}, seed=0, dtype=dtype, device=device
    ),
}


@st.composite
def networks(
    draw,
    *,
    kind: str | SearchStrategy[str] = st.sampled_from(("mlp", "convnet")),
    device: str | SearchStrategy[str] = "cpu",
    dtype: torch.dtype | SearchStrategy[torch.dtype] = st.sampled_from((torch.float32, torch.float64)),
) -> Network:
    """A small MLP or conv net with drawn sizes and values, and a drawn input batch."""
    kind_ = draw(as_strategy(kind), label="network kind")
    device_ = draw(as_strategy(device), label="device")
    dtype_ = draw(as_strategy(dtype), label="network dtype")
    batch = draw(st.integers(1, 4), label="batch size")
    if kind_ == "mlp":
        sizes = {"widths": draw(st.lists(st.integers(1, 6), min_size=2, max_size=4), label="mlp widths"), "batch": batch}
    else:
        channels = draw(st.lists(st.integers(1, 4), min_size=2, max_size=3), label="conv channels")
        sizes = {
            "channels": channels,
            "classes": draw(st.integers(1, 4), label="classes"),
            "side": draw(st.integers(1, 6), label="image side"),
            "batch": batch,
        }
    seed = draw(seeds(), label="network seed")
    return _build(kind_, sizes, seed=seed, dtype=dtype_, device=device_)
