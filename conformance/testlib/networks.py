"""Small networks: drawn ones for the conformance tests, fixed ones for the benchmarks.

Both kinds are built by the same two constructors, :func:`mlp` and
:func:`convnet`, so a benchmark measures the same shape of network a test
checks.  Parameter values are set from a seeded generator, never from torch's
global RNG, so building a network does not disturb the run.

Tests that need hypothesis to replay and shrink each parameter's values (the
module and optimizer tests) build the same networks with :func:`draw_mlp`, whose
values are drawn element by element through :func:`fill_drawn`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from .strategies import as_strategy, seeds, tensors

nn = torch.nn

__all__ = ["BENCHMARK_NETWORKS", "Network", "convnet", "draw_mlp", "fill_drawn", "mlp", "networks"]


def _fill_from_seed(module: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.rand(param.shape, generator=generator, dtype=torch.float64) * 2 - 1)
    return module


def mlp(
    widths: Sequence[int],
    *,
    seed: int = 0,
    activation: Callable[[], nn.Module] = nn.ReLU,
    batchnorm: bool = False,
    dropout: Sequence[float] = (),
) -> nn.Sequential:
    """``Linear -> activation -> ... -> Linear`` through ``widths`` (input width first).

    With ``batchnorm``, a ``BatchNorm1d`` follows each hidden Linear; ``dropout``
    gives a ``Dropout(p)`` after each hidden activation (one ``p`` per hidden layer).
    """
    hidden = len(widths) - 2
    if dropout and len(dropout) != hidden:
        raise ValueError(f"dropout needs one p per hidden layer ({hidden}), got {list(dropout)}")
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < hidden:
            if batchnorm:
                layers.append(nn.BatchNorm1d(fan_out))
            layers.append(activation())
            if dropout:
                layers.append(nn.Dropout(dropout[index]))
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


def fill_drawn(module: nn.Module, data, device, *, label: str, low: float = -1.0, high: float = 1.0) -> nn.Module:
    """Give every parameter drawn values (labelled ``<label>.<name>``), so hypothesis replays and shrinks them."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            value = data.draw(tensors(dtype=param.dtype, shape=tuple(param.shape), device=device, low=low, high=high), label=f"{label}.{name}")
            param.copy_(value)
    return module


def draw_mlp(
    data,
    device,
    *,
    dtype: torch.dtype = torch.float64,
    batchnorm: bool = False,
    dropout: bool = False,
    label: str = "net",
) -> nn.Sequential:
    """:func:`mlp` with Tanh (no dead units: every parameter the loss reaches gets a non-zero gradient),
    1-3 drawn layers of width 1-4, optional BatchNorm1d and Dropout(drawn p), and drawn values."""
    widths = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4), label=f"{label} widths")
    ps = [data.draw(st.floats(0.0, 1.0), label=f"{label} dropout p {i}") for i in range(len(widths) - 2)] if dropout else ()
    net = mlp(widths, activation=nn.Tanh, batchnorm=batchnorm, dropout=ps).to(device=device, dtype=dtype)
    return fill_drawn(net, data, device, label=label)


def accumulation_seed_convnet(device, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """The network of the gradient-accumulation seed article ``000_11918659c5b97dba.txt`` (ACCUM-1..9):
    conv-conv-linear without biases, scaled down to 3x6x6 images and 5 classes.

    Its parameters get torch's default initialisation from a forked RNG (the same
    values every time; the global RNG is left as it was); tests that need known
    or drawn values set them (the seed fills every parameter with 0.1).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(3, 4, 3, 1, padding=1, bias=False),
            nn.Conv2d(4, 6, 3, 1, padding=1, bias=False),
            nn.Flatten(),
            nn.Linear(6 * 6 * 6, 5, bias=False),
        )
    return net.to(device=device, dtype=dtype)


__all__ += ["accumulation_seed_convnet"]


def freezing_seed_two_conv_network(device, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """The two-convolution network the seed ``000_11918659c5b97dba.txt`` freezes (REQGRAD-7):
    ``Conv2d(3, 4, 3) -> Conv2d(4, 5, 3)`` (the seed's 16 and 32 channels scaled down),
    for inputs of shape ``(N, 3, H, W)`` with ``H, W >= 5``.

    Parameter values come from a forked RNG (the global RNG is left as it was).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 4, 3, 1), nn.Conv2d(4, 5, 3, 1))
    return net.to(device=device, dtype=dtype)


__all__ += ["freezing_seed_two_conv_network"]
