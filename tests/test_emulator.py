"""The emulated device (``conformance/emulator``) behaves like a real non-CPU device where the clauses look.

It is registered by the plugin at configure time (a default device where no
accelerator is present, or ``--device emu``), before the first backward of the
process, as the autograd engine requires; these tests use that registration.
"""

from __future__ import annotations

import pytest
import torch

from conformance import emulator
from conformance.benchmarks.conftest import synchronizer
from conformance.plugin import backends, devices


@pytest.fixture(scope="module")
def emu() -> torch.device:
    if not emulator.is_loaded():
        status = devices.probe(emulator.DEVICE_TYPE) if emulator.MIN_TORCH <= emulator._torch_line() else None
        pytest.skip(
            "the emulated device was not registered at configure time in this run (it is where --device names it "
            f"or where it is a default device): {status.reason if status else 'torch too old'}"
        )
    return torch.device(emulator.DEVICE_TYPE)


# ----------------------------------------------------------------------------- a device like a real one


def test_tensors_live_on_a_non_cpu_device_type(emu):
    t = torch.ones(2, device=emu)
    assert t.device.type == "emu" and t.device.index == 0 and not t.is_cpu and t.is_emu
    assert torch.emu.is_available() and torch.emu.device_count() == 1
    assert devices.probe("emu").available


def test_numpy_refuses_it(emu):
    with pytest.raises(TypeError, match="can't convert emu:0 device type tensor to numpy"):
        torch.ones(2, device=emu).numpy()


def test_cpu_copies(emu):
    t = torch.arange(4.0, device=emu)
    c = t.cpu()
    assert c.device.type == "cpu" and c.data_ptr() != t.data_ptr()
    c.add_(1)
    assert torch.equal(t.cpu(), torch.arange(4.0))


def test_moves_to_it_are_differentiable_and_gradients_land_on_each_leafs_device(emu):
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    w = torch.tensor([3.0, 4.0], device=emu, requires_grad=True)
    y = x.to(emu)
    assert type(y.grad_fn).__name__ == "ToCopyBackward0"
    (y * w).sum().backward()
    assert x.grad.device.type == "cpu" and torch.equal(x.grad, torch.tensor([3.0, 4.0]))
    assert w.grad.device == w.device and torch.equal(w.grad.cpu(), torch.tensor([1.0, 2.0]))


def test_mixing_with_a_cpu_tensor_raises_but_a_cpu_scalar_mixes(emu):
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        torch.ones(2, device=emu) + torch.ones(2)
    assert torch.equal((torch.ones(2, device=emu) + torch.tensor(1.0)).cpu(), torch.full((2,), 2.0))


def test_views_share_storage_and_version_counter(emu):
    t = torch.zeros(2, 3, device=emu)
    v = t.t()
    assert v.data_ptr() == t.data_ptr() and v.stride() == (1, 3) and v._base is t
    v[0].add_(1)
    assert t._version == v._version == 1
    assert torch.equal(t.cpu(), torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))


def test_out_arguments_resize_and_in_place_metadata_ops_restride(emu):
    out = torch.empty(0, device=emu)
    torch.add(torch.ones(3, device=emu), 1, out=out)
    assert out.shape == (3,) and torch.equal(out.cpu(), torch.full((3,), 2.0))
    m = torch.arange(6.0, device=emu).reshape(2, 3)
    m.t_()
    assert m.shape == (3, 2) and torch.equal(m.cpu(), torch.arange(6.0).reshape(2, 3).t())


def test_conjugate_and_negative_views_resolve(emu):
    c = torch.tensor([1 + 2j, 3 - 4j], device=emu)
    assert c.conj().is_conj()
    assert torch.equal(c.conj().cpu().resolve_conj(), torch.tensor([1 - 2j, 3 + 4j]))
    assert torch.equal(c.conj().imag.cpu(), torch.tensor([-2.0, 4.0]))


def test_views_of_normal_tensors_made_under_inference_mode_are_normal(emu):
    t = torch.ones(4, device=emu)
    with torch.inference_mode():
        v = t.view(2, 2)
        fresh = t * 2
    assert not v.is_inference() and fresh.is_inference()


def test_convolution_and_batch_norm_match_the_cpu(emu):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU())
    twin = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU())
    twin.load_state_dict(net.state_dict())
    twin.to(emu)
    x = torch.randn(4, 2, 6, 6)
    net(x).square().sum().backward()
    twin(x.to(emu)).square().sum().backward()
    torch.testing.assert_close(twin[0].weight.grad.cpu(), net[0].weight.grad)
    torch.testing.assert_close(twin[1].running_mean.cpu(), net[1].running_mean)
    assert twin[1].num_batches_tracked.item() == 1


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_recurrent_modules_match_the_cpu_in_both_backward_paths(emu, kind, bias):
    """ATen runs LSTM and GRU on a non-CPU device through the fused cells, which the CPU lacks: the emulator's own
    kernels (with CUDA's workspace layout) give the CPU's outputs and gradients, through the fused backward and,
    under ``create_graph=True``, the differentiable one."""
    torch.manual_seed(0)
    net = getattr(torch.nn, kind)(3, 4, num_layers=2, bias=bias).double()
    twin = getattr(torch.nn, kind)(3, 4, num_layers=2, bias=bias).double()
    twin.load_state_dict(net.state_dict())
    twin.to(emu)
    x = torch.randn(5, 2, 3, dtype=torch.double)
    for create_graph in (False, True):
        results = []
        for module, dev in ((net, "cpu"), (twin, emu)):
            module.zero_grad()
            inp = x.to(dev).requires_grad_()
            out, state = module(inp)
            last = state if kind == "GRU" else state[1]  # the GRU's hidden state, the LSTM's cell state
            loss = out.square().sum() + last.sum()
            (grad_x,) = torch.autograd.grad(loss, inp, create_graph=create_graph, retain_graph=True)
            loss.backward()
            results.append((out, grad_x, *(p.grad for p in module.parameters())))
        for cpu_value, emu_value in zip(*results):
            assert emu_value.device.type == emu.type
            torch.testing.assert_close(emu_value.detach().cpu(), cpu_value.detach())


def test_efficient_zero_tensors_are_zero_tensors_and_forward_mode_uses_them(emu):
    """Forward-mode AD gives an operand without a tangent (a Python scalar) a zero tensor that owns no memory;
    on the device it must be one too, not uninitialised memory (the tangent of ``x.mul(0.5)`` read garbage)."""
    import torch.autograd.forward_ad as fwAD

    zeros = torch._efficientzerotensor((2, 3), dtype=torch.float64, device=emu)
    assert zeros._is_zerotensor() and zeros.device.type == emu.type and zeros.dtype == torch.float64
    assert torch.equal((zeros + 1).cpu(), torch.ones(2, 3, dtype=torch.float64))
    x = torch.randn(3, 4, dtype=torch.float64)
    with fwAD.dual_level():
        tangents = [fwAD.unpack_dual(fwAD.make_dual(x.to(device), torch.ones_like(x).to(device)).mul(0.5)).tangent.cpu() for device in ("cpu", emu)]
    assert torch.equal(tangents[1], tangents[0]) and torch.equal(tangents[0], torch.full((3, 4), 0.5, dtype=torch.float64))


def test_checkpointing_replays_dropout_and_autocast_state_on_it(emu):
    """torch.utils.checkpoint asks the device module for its autocast dtypes and RNG state (on every call once the
    device is the process's accelerator, even for CPU tensors): dropout inside a checkpoint gets the uncheckpointed
    gradient on the device and on the CPU."""
    from torch.utils.checkpoint import checkpoint

    for device in (emu, torch.device("cpu")):
        torch.manual_seed(1)
        net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1)).to(device)
        x = torch.randn(3, 4, device=device, requires_grad=True)
        torch.manual_seed(0)
        (plain,) = torch.autograd.grad(net(x).sum(), x)
        for use_reentrant in (True, False):
            x.grad = None
            torch.manual_seed(0)
            checkpoint(net, x, use_reentrant=use_reentrant).sum().backward()  # the reentrant variant refuses grad()
            assert torch.equal(x.grad.cpu(), plain.cpu()), (device, use_reentrant)


def test_autocast_runs_its_ops_in_the_policies_dtypes(emu):
    """The emulator's AutocastPrivateUse1 kernels (AMP-1..5 run on emu): matmul in the autocast dtype, a
    precision-sensitive op in float32, and the device module's autocast state read and set back."""
    a = torch.randn(3, 3, device="emu", requires_grad=True)
    with torch.autocast("emu", dtype=torch.bfloat16):
        assert torch.emu.is_autocast_enabled()
        product = a @ a
        assert product.dtype == torch.bfloat16
        assert torch.log_softmax(product, -1).dtype == torch.float32
    assert not torch.emu.is_autocast_enabled()
    before = torch.emu.get_autocast_dtype()
    torch.emu.set_autocast_dtype(torch.float16)
    try:
        assert torch.emu.get_autocast_dtype() == torch.float16
    finally:
        torch.emu.set_autocast_dtype(before)
    product.float().sum().backward()
    assert a.grad.dtype == torch.float32


def test_benchmarks_synchronize_it(emu):
    before = torch.emu.synchronize_calls
    synchronizer("emu")()
    assert torch.emu.synchronize_calls == before + 1


def test_the_report_names_it_and_its_backend(emu):
    from conformance.plugin.environment import collect_environment

    environment = collect_environment({"emu": devices.probe("emu")}, profile="ci")
    assert environment["device_status"]["emu"] == {"available": True, "reason": "", "name": emulator.DEVICE_NAME}
    entry = next(e for e in environment["backends"] if e["module"] == "conformance.emulator")
    assert entry["privateuse1_device_type"] == "emu" and entry["origin"] == "--device emu"


# ----------------------------------------------------------------------------- unavailable, with the reason


def test_too_old_a_torch_is_a_reason_not_a_crash(monkeypatch):
    monkeypatch.setattr(emulator, "_torch_line", lambda: (2, 0))
    with pytest.raises(emulator.EmulatorUnavailable, match=r"needs torch >= 2\.1"):
        emulator._register()


def test_the_report_of_a_run_where_it_is_unavailable_is_written():
    """The 1.13.1 and 2.0.1 matrix lines: the report's environment once called torch.device("emu") for the CUDA
    check, which raises where the emulator did not load."""
    from conformance.plugin.devices import DeviceStatus
    from conformance.plugin.environment import collect_environment

    unavailable = DeviceStatus("nosuchdevice", False, "nosuchdevice not available: needs torch >= 2.1")
    environment = collect_environment({"cpu": devices.probe("cpu"), "nosuchdevice": unavailable}, profile="ci")
    assert environment["device_status"]["nosuchdevice"]["available"] is False
    assert environment["cudnn"] is None


def test_a_privateuse1_key_taken_by_another_backend_is_a_reason(monkeypatch):
    monkeypatch.setattr(torch._C, "_get_privateuse1_backend_name", lambda: "npu")
    with pytest.raises(emulator.EmulatorUnavailable, match="already taken by the 'npu' backend"):
        emulator._register()


def test_a_failed_build_is_a_reason(monkeypatch, tmp_path):
    from torch.utils import cpp_extension

    def fail(**kwargs):
        raise RuntimeError("Error building extension 'x'\nmore")

    monkeypatch.setattr(cpp_extension, "load", fail)
    monkeypatch.setenv("CONFORMANCE_EMU_BUILD_DIR", str(tmp_path))
    with pytest.raises(emulator.EmulatorUnavailable, match=r"building the emulated device's C\+\+ backend failed \(RuntimeError: Error building extension 'x'\)"):
        emulator._build_and_load_library()


def test_the_emulated_device_stands_in_only_where_no_accelerator_is(monkeypatch):
    real_probe = devices.probe
    monkeypatch.setattr(devices, "probe", lambda name: devices.DeviceStatus(name, True) if name == "cuda" else real_probe(name))
    status = devices.status_in_run("emu", explicit=False)
    assert not status.available and "cuda is here" in status.reason and "--device emu" in status.reason
    assert devices.status_in_run("cpu", explicit=False).available


# ----------------------------------------------------------------------------- vendor backends


def test_a_backend_module_that_fails_to_import_is_an_error():
    with pytest.raises(backends.BackendError, match="'no_such_backend_module' \\(--backend\\) failed to import: ModuleNotFoundError"):
        backends.import_backends(["no_such_backend_module"])


def test_backend_modules_from_the_option_and_the_entry_point_group_are_imported_and_recorded(emu, monkeypatch):
    class EntryPoint:
        name, value = "vendor", "json:unused"

    monkeypatch.setattr(backends, "_entry_points", lambda group: [EntryPoint()] if group == backends.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(backends, "_loaded", {})
    entries = backends.import_backends(["conformance.emulator.autoload"])
    assert [(e["module"], e["origin"]) for e in entries] == [
        ("conformance.emulator.autoload", "--backend"),
        ("json", "entry point 'vendor'"),
    ]
    assert entries[1]["distribution"] is None  # the standard library belongs to no distribution
    assert set(entries[0]) == {"module", "origin", "distribution", "version"}


def test_set_shares_the_source_storage(emu):
    source = torch.arange(6.0, device=emu)
    t = torch.empty(0, device=emu)
    t.set_(source)
    assert t.data_ptr() == source.data_ptr() and t.shape == (6,)
    u = torch.empty(0, device=emu).set_(source.untyped_storage(), 2, (2, 2), (2, 1))
    source.add_(1)
    assert torch.equal(u.cpu(), torch.tensor([[3.0, 4.0], [5.0, 6.0]]))
