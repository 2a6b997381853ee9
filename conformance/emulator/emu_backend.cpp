// The emulated accelerator: a CPU-backed device of a non-CPU device type.
//
// Registered through PyTorch's own out-of-tree backend mechanism, the
// PrivateUse1 dispatch key (https://pytorch.org/tutorials/advanced/privateuseone.html):
// an allocator, a device guard and accelerator hooks for the device type, and
// one boxed fallback kernel for every operator.  The autograd, ADInplaceOrView
// and composite kernels sit above the backend and are PyTorch's own, so every
// clause exercises the real autograd engine on tensors whose device.type is
// not "cpu".
//
// Memory is host memory (the allocator is malloc), tagged with the device.
// The fallback runs each operator's CPU kernel on CPU *aliases* of the device
// tensors (same bytes, same sizes/strides/offset, no copy), then hands back
//   * the device tensor itself for outputs the schema marks as written to
//     (in-place and out= forms),
//   * a device view of the same storage for outputs that alias an input
//     (view operators),
//   * a fresh device tensor holding a copy of anything else.
// Operators mixing device tensors with non-scalar CPU tensors raise the same
// error a CUDA kernel raises ("Expected all tensors to be on the same device").
//
// Only torch's public C++ extension headers are used; the Python side
// (conformance/emulator/__init__.py) builds this file with
// torch.utils.cpp_extension.load and names the device with
// torch.utils.rename_privateuse1_backend.

#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <ATen/autocast_mode.h>
#include <ATen/native/TensorFactories.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/detail/PrivateUse1HooksInterface.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/library.h>
#include <torch/version.h>

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#define EMU_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||      \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace {

constexpr c10::DeviceType kEmu = c10::DeviceType::PrivateUse1;
const c10::Device kEmuDevice(kEmu, 0);

// ----------------------------------------------------------------- allocator

void emu_free(void* data) {
  c10::free_cpu(data);
}

struct EmuAllocator final : public c10::Allocator {
#if EMU_TORCH_AT_LEAST(2, 3)
  c10::DataPtr allocate(size_t nbytes) override {
#else
  c10::DataPtr allocate(size_t nbytes) const override {
#endif
    void* data = nbytes ? c10::alloc_cpu(nbytes) : nullptr;
    return {data, data, &emu_free, kEmuDevice};
  }
  c10::DeleterFnPtr raw_deleter() const override {
    return &emu_free;
  }
#if EMU_TORCH_AT_LEAST(2, 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    std::memcpy(dest, src, count);
  }
#endif
};

EmuAllocator g_allocator;

// ----------------------------------------------------------------- device guard

struct EmuGuardImpl final : public c10::impl::DeviceGuardImplInterface {
  c10::DeviceType type() const override {
    return kEmu;
  }
  c10::Device exchangeDevice(c10::Device) const override {
    return kEmuDevice;
  }
  c10::Device getDevice() const override {
    return kEmuDevice;
  }
  void setDevice(c10::Device device) const override {
    TORCH_CHECK(device.type() == kEmu && (device.index() == 0 || device.index() == -1),
                "the emulated device has one device, index 0; got ", device);
  }
  void uncheckedSetDevice(c10::Device) const noexcept override {}
  c10::Stream getStream(c10::Device) const noexcept override {
    return c10::Stream(c10::Stream::DEFAULT, kEmuDevice);
  }
  c10::Stream getDefaultStream(c10::Device) const override {
    return c10::Stream(c10::Stream::DEFAULT, kEmuDevice);
  }
  c10::Stream exchangeStream(c10::Stream) const noexcept override {
    return c10::Stream(c10::Stream::DEFAULT, kEmuDevice);
  }
  c10::DeviceIndex deviceCount() const noexcept override {
    return 1;
  }
  // Work is synchronous: every event has completed, every stream is idle.
  void record(void**, const c10::Stream&, const c10::DeviceIndex, const c10::EventFlag) const override {}
  void block(void*, const c10::Stream&) const override {}
  bool queryEvent(void*) const override {
    return true;
  }
  void destroyEvent(void*, const c10::DeviceIndex) const noexcept override {}
#if EMU_TORCH_AT_LEAST(2, 1)
  bool queryStream(const c10::Stream&) const override {
    return true;
  }
  void synchronizeStream(const c10::Stream&) const override {}
#endif
};

C10_REGISTER_GUARD_IMPL(PrivateUse1, EmuGuardImpl);

// ----------------------------------------------------------------- accelerator hooks

// The interface grew across torch versions (2.1 has two methods, 2.13 a dozen),
// so these are declared without `override`: each one overrides where the
// torch being built against declares it, and is an unused extra elsewhere.
struct EmuHooks final : public at::PrivateUse1HooksInterface {
  EmuHooks() = default;
  explicit EmuHooks(at::PrivateUse1HooksArgs) {}
  bool hasPrimaryContext(c10::DeviceIndex) const {
    return true;
  }
  bool isBuilt() const {
    return true;
  }
  bool isAvailable() const {
    return true;
  }
  bool isPinnedPtr(const void*) const {
    return false;
  }
  c10::Allocator* getPinnedMemoryAllocator() const {
    return c10::GetCPUAllocator();
  }
  at::Device getDeviceFromPtr(void*) const {
    return kEmuDevice;
  }
  void resizePrivateUse1Bytes(const c10::Storage& storage, size_t newsize) const;
};

// ----------------------------------------------------------------- CPU aliases

// Resizes a device storage in place (keeping its contents), like the CPU
// allocator's resize does for CPU storages.
void resize_storage_bytes(c10::StorageImpl* storage, size_t nbytes) {
  if (nbytes <= storage->nbytes()) {
    return;
  }
  TORCH_CHECK(storage->resizable(), "Trying to resize storage that is not resizable");
  c10::DataPtr fresh = g_allocator.allocate(nbytes);
  if (storage->nbytes() > 0 && storage->data() != nullptr) {
    std::memcpy(fresh.get(), storage->data(), storage->nbytes());
  }
  storage->set_data_ptr_noswap(std::move(fresh));
  storage->set_nbytes(nbytes);
}

void EmuHooks::resizePrivateUse1Bytes(const c10::Storage& storage, size_t newsize) const {
  resize_storage_bytes(storage.unsafeGetStorageImpl(), newsize);
}

// One CPU alias storage per device storage within one operator call, so that
// the CPU kernel's overlap checks see two aliases of one storage as one.
using AliasStorages = std::unordered_map<const c10::StorageImpl*, c10::Storage>;

bool is_emu(const at::Tensor& t) {
  return t.defined() && t.device().type() == kEmu;
}

at::Tensor cpu_alias(const at::Tensor& t, AliasStorages& storages) {
  const c10::StorageImpl* key = t.storage().unsafeGetStorageImpl();
  auto found = storages.find(key);
  if (found == storages.end()) {
    // Resizable with the CPU allocator: a CPU kernel that resizes an output
    // reallocates the alias, and the fallback copies the result back.
    c10::Storage alias(
        c10::Storage::use_byte_size_t(),
        t.storage().nbytes(),
        c10::DataPtr(const_cast<void*>(t.storage().data()), c10::Device(c10::DeviceType::CPU)),
        c10::GetCPUAllocator(),
        /*resizable=*/true);
    found = storages.emplace(key, std::move(alias)).first;
  }
  auto impl = c10::make_intrusive<c10::TensorImpl>(
      c10::Storage(found->second), c10::DispatchKeySet(c10::DispatchKey::CPU), t.dtype());
  impl->set_sizes_and_strides(t.sizes(), t.strides());
  impl->set_storage_offset(t.storage_offset());
  impl->_set_conj(t.is_conj());
  impl->_set_neg(t.is_neg());
  return at::Tensor(std::move(impl));
}

// A device tensor with `like`'s metadata over `storage`.
at::Tensor emu_tensor_over(c10::Storage storage, const at::Tensor& like) {
  auto impl = c10::make_intrusive<c10::TensorImpl>(
      std::move(storage), c10::DispatchKeySet(c10::DispatchKey::PrivateUse1), like.dtype());
  impl->set_sizes_and_strides(like.sizes(), like.strides());
  impl->set_storage_offset(like.storage_offset());
  impl->_set_conj(like.is_conj());
  impl->_set_neg(like.is_neg());
  return at::Tensor(std::move(impl));
}

// A device copy of a CPU result: the whole storage, so offsets, strides and
// the conj/neg bits carry over exactly.
at::Tensor emu_copy_of(const at::Tensor& cpu) {
  const size_t nbytes = cpu.storage().nbytes();
  c10::Storage storage(c10::Storage::use_byte_size_t(), nbytes, g_allocator.allocate(nbytes), &g_allocator,
                       /*resizable=*/true);
  if (nbytes > 0 && cpu.storage().data() != nullptr) {
    std::memcpy(storage.mutable_data(), cpu.storage().data(), nbytes);
  }
  return emu_tensor_over(std::move(storage), cpu);
}

// ----------------------------------------------------------------- the fallback

struct CallState {
  AliasStorages storages;
  // CPU alias storage -> the device tensor it came from (for view outputs)
  std::unordered_map<const c10::StorageImpl*, at::Tensor> emu_of_alias;
  std::vector<c10::IValue> original_args;
  // (device tensor, its CPU alias) for every argument the operator writes to
  std::vector<std::pair<at::Tensor, at::Tensor>> written;
};

// Operators whose CPU kernels accept tensors on two devices (copies, indexing
// with CPU indices), so the same-device check does not apply to them.
bool takes_mixed_devices(const c10::OperatorName& name) {
  static const char* names[] = {
      "aten::copy_", "aten::_copy_from", "aten::_copy_from_and_resize", "aten::_to_copy", "aten::to",
      "aten::index", "aten::index_put_", "aten::_index_put_impl_", "aten::index_put",
      "aten::_has_compatible_shallow_copy_type", "aten::is_same_size", "aten::set_"};
  for (const char* n : names) {
    if (name.name == n) {
      return true;
    }
  }
  return false;
}

void check_same_device(const c10::OperatorHandle& op, const std::vector<c10::IValue>& args) {
  if (takes_mixed_devices(op.schema().operator_name())) {
    return;
  }
  const auto& schema_args = op.schema().arguments();
  bool any_emu = false;
  const c10::Argument* cpu_arg = nullptr;
  auto look = [&](const at::Tensor& t, const c10::Argument& arg) {
    if (!t.defined()) {
      return;
    }
    if (is_emu(t)) {
      any_emu = true;
    } else if (t.device().is_cpu() && t.dim() > 0 && cpu_arg == nullptr) {
      cpu_arg = &arg;  // CPU scalars (0-dim) mix with any device, as on CUDA
    }
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& value = args[i];
    if (value.isTensor()) {
      look(value.toTensor(), schema_args[i]);
    } else if (value.isList()) {
      for (const c10::IValue& item : value.toListRef()) {
        if (item.isTensor()) {
          look(item.toTensor(), schema_args[i]);
        }
      }
    }
  }
  TORCH_CHECK(!(any_emu && cpu_arg != nullptr),
              "Expected all tensors to be on the same device, but found at least two devices, ",
              c10::Device(kEmu, 0), " and cpu! (when checking argument for argument ", cpu_arg ? cpu_arg->name() : "",
              " in method ", op.schema().operator_name(), ")");
}

c10::IValue to_cpu_arg(const c10::IValue& value, bool written, CallState& state) {
  if (value.isTensor()) {
    const at::Tensor& t = value.toTensor();
    if (!is_emu(t)) {
      return value;
    }
    at::Tensor alias = cpu_alias(t, state.storages);
    state.emu_of_alias.emplace(alias.storage().unsafeGetStorageImpl(), t);
    if (written) {
      state.written.emplace_back(t, alias);
    }
    return alias;
  }
  if (value.isTensorList()) {
    c10::List<at::Tensor> list = value.toTensorList().copy();
    for (size_t i = 0; i < list.size(); ++i) {
      at::Tensor t = list.get(i);
      if (is_emu(t)) {
        list.set(i, to_cpu_arg(t, written, state).toTensor());
      }
    }
    return list;
  }
  if (value.isList()) {  // e.g. Tensor?[]
    c10::impl::GenericList list = value.toList().copy();
    for (size_t i = 0; i < list.size(); ++i) {
      c10::IValue item = list.get(i);
      if (item.isTensor() && is_emu(item.toTensor())) {
        list.set(i, to_cpu_arg(item, written, state));
      }
    }
    return list;
  }
  if (value.isDevice() && value.toDevice().type() == kEmu) {
    return c10::Device(c10::DeviceType::CPU);
  }
  return value;
}

// The device tensor an output should be, given the CPU result and the schema.
at::Tensor to_emu_result(const at::Tensor& result, const c10::Argument& ret, const c10::FunctionSchema& schema,
                         CallState& state) {
  if (!result.defined() || !result.device().is_cpu()) {
    return result;
  }
  const c10::AliasInfo* alias = ret.alias_info();
  if (alias != nullptr && alias->isWrite()) {
    // In-place or out=: the device argument in the same alias set.
    for (size_t i = 0; i < schema.arguments().size(); ++i) {
      const c10::AliasInfo* arg_alias = schema.arguments()[i].alias_info();
      if (arg_alias != nullptr && arg_alias->isWrite() && arg_alias->beforeSets() == alias->beforeSets() &&
          state.original_args[i].isTensor()) {
        return state.original_args[i].toTensor();
      }
    }
  }
  auto base = state.emu_of_alias.find(result.storage().unsafeGetStorageImpl());
  if (base != state.emu_of_alias.end()) {
    // A view of a device input: a device view of the same storage, made the
    // way torch's own view kernels make one (a VIEW TensorImpl with the base's
    // keys), so that under inference_mode a view of a normal tensor is normal.
    const at::Tensor& emu_base = base->second;
    auto impl = c10::make_intrusive<c10::TensorImpl>(c10::TensorImpl::VIEW, c10::Storage(emu_base.storage()),
                                                     emu_base.key_set(), result.dtype());
    impl->set_sizes_and_strides(result.sizes(), result.strides());
    impl->set_storage_offset(result.storage_offset());
    impl->_set_conj(result.is_conj());
    impl->_set_neg(result.is_neg());
    return at::Tensor(std::move(impl));
  }
  return emu_copy_of(result);
}

c10::IValue to_emu_value(const c10::IValue& value, const c10::Argument& ret, const c10::FunctionSchema& schema,
                         CallState& state) {
  if (value.isTensor()) {
    return to_emu_result(value.toTensor(), ret, schema, state);
  }
  if (value.isTensorList()) {
    c10::List<at::Tensor> list = value.toTensorList().copy();
    for (size_t i = 0; i < list.size(); ++i) {
      list.set(i, to_emu_result(list.get(i), ret, schema, state));
    }
    return list;
  }
  return value;
}

// A written argument whose CPU alias the kernel resized or restrided
// (out= resizing, in-place metadata ops such as t_ or squeeze_): the device
// tensor takes the new storage bytes and metadata.
void write_back(const at::Tensor& emu, const at::Tensor& alias) {
  c10::StorageImpl* storage = emu.storage().unsafeGetStorageImpl();
  if (alias.storage().data() != storage->data()) {
    const size_t nbytes = alias.storage().nbytes();
    c10::DataPtr fresh = g_allocator.allocate(nbytes);
    if (nbytes > 0) {
      std::memcpy(fresh.get(), alias.storage().data(), nbytes);
    }
    storage->set_data_ptr_noswap(std::move(fresh));
    storage->set_nbytes(nbytes);
  }
  c10::TensorImpl* impl = emu.unsafeGetTensorImpl();
  if (!impl->sizes().equals(alias.sizes()) || !impl->strides().equals(alias.strides()) ||
      impl->storage_offset() != alias.storage_offset()) {
    impl->set_sizes_and_strides(alias.sizes(), alias.strides());
    impl->set_storage_offset(alias.storage_offset());
  }
}

bool has_emu_device_arg(const std::vector<c10::IValue>& args) {
  for (const auto& value : args) {
    if (value.isDevice() && value.toDevice().type() == kEmu) {
      return true;
    }
  }
  return false;
}

// Runs `call` (which consumes the schema's arguments from the stack and
// pushes its returns) with every device tensor argument replaced by its CPU
// alias, then turns the CPU returns back into device tensors.
template <typename Call>
void run_on_cpu(const c10::OperatorHandle& op, torch::jit::Stack* stack, Call&& call) {
  const c10::FunctionSchema& schema = op.schema();
  const size_t num_args = schema.arguments().size();
  CallState state;
  state.original_args.assign(stack->end() - num_args, stack->end());
  check_same_device(op, state.original_args);
  for (size_t i = 0; i < num_args; ++i) {
    c10::IValue& slot = (*stack)[stack->size() - num_args + i];
    const c10::AliasInfo* alias = schema.arguments()[i].alias_info();
    slot = to_cpu_arg(slot, alias != nullptr && alias->isWrite(), state);
  }
  const bool makes_emu = !state.emu_of_alias.empty() || has_emu_device_arg(state.original_args);
  call(stack);
  for (auto& [emu, alias] : state.written) {
    write_back(emu, alias);
  }
  const size_t num_returns = schema.returns().size();
  for (size_t j = 0; j < num_returns && makes_emu; ++j) {
    c10::IValue& slot = (*stack)[stack->size() - num_returns + j];
    slot = to_emu_value(slot, schema.returns()[j], schema, state);
  }
}

void emu_fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  run_on_cpu(op, stack, [&](torch::jit::Stack* s) { op.callBoxed(s); });
}

// convolution_overrideable / convolution_backward_overrideable: the hooks
// torch's convolution calls for a backend of its own; they run the CPU
// convolution and its backward.
void emu_convolution(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  static const auto convolution = c10::Dispatcher::singleton().findSchemaOrThrow("aten::convolution", "");
  run_on_cpu(op, stack, [&](torch::jit::Stack* s) { convolution.callBoxed(s); });
}

void emu_convolution_backward(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  static const auto backward = c10::Dispatcher::singleton().findSchemaOrThrow("aten::convolution_backward", "");
  run_on_cpu(op, stack, [&](torch::jit::Stack* s) {
    // (grad_output, input, weight, stride, padding, dilation, transposed, output_padding, groups, output_mask)
    // -> convolution_backward takes bias_sizes after weight.
    const size_t first = s->size() - 10;
    const at::Tensor& weight = (*s)[first + 2].toTensor();
    const bool transposed = (*s)[first + 6].toBool();
    const int64_t groups = (*s)[first + 8].isSymInt() ? (*s)[first + 8].toSymInt().guard_int(__FILE__, __LINE__)
                                                       : (*s)[first + 8].toInt();
    const int64_t channels = transposed ? weight.size(1) * groups : weight.size(0);
    s->insert(s->begin() + first + 3, c10::IValue(std::vector<int64_t>{channels}));
    backward.callBoxed(s);
  });
}

// ----------------------------------------------------------------- kernels the fallback cannot do

// self.copy_(src) across devices: both are host memory, so a CPU copy between aliases.
at::Tensor emu_copy_from(const at::Tensor& self, const at::Tensor& dst, bool non_blocking) {
  AliasStorages storages;
  at::Tensor dst_cpu = is_emu(dst) ? cpu_alias(dst, storages) : dst;
  at::Tensor src_cpu = is_emu(self) ? cpu_alias(self, storages) : self;
  dst_cpu.copy_(src_cpu, non_blocking);
  return dst;
}

at::Tensor emu_copy_from_and_resize(const at::Tensor& self, const at::Tensor& dst) {
  if (!dst.sizes().equals(self.sizes())) {
    dst.resize_(self.sizes());
  }
  return emu_copy_from(self, dst, false);
}

int64_t to_int(const c10::IValue& value) {
  return value.isSymInt() ? value.toSymInt().guard_int(__FILE__, __LINE__) : value.toInt();
}

std::vector<int64_t> to_ints(const c10::IValue& value) {
  std::vector<int64_t> ints;
  for (const c10::IValue& item : value.toListRef()) {
    ints.push_back(to_int(item));
  }
  return ints;
}

void emu_resize_boxed(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  // resize_(Tensor(a!) self, SymInt[] size, *, MemoryFormat? memory_format=None) -> Tensor(a!)
  c10::IValue format = torch::jit::pop(*stack);
  c10::IValue size_value = torch::jit::pop(*stack);
  at::Tensor self = torch::jit::pop(*stack).toTensor();
  std::vector<int64_t> size = to_ints(size_value);
  int64_t numel = 1;
  for (int64_t s : size) {
    numel *= s;
  }
  const size_t needed = static_cast<size_t>(self.storage_offset() + numel) * self.dtype().itemsize();
  resize_storage_bytes(self.storage().unsafeGetStorageImpl(), needed);
  self.unsafeGetTensorImpl()->set_sizes_contiguous(size);
  if (!format.isNone() && format.toMemoryFormat() != c10::MemoryFormat::Contiguous &&
      format.toMemoryFormat() != c10::MemoryFormat::Preserve) {
    self.unsafeGetTensorImpl()->empty_tensor_restride(format.toMemoryFormat());
  }
  torch::jit::push(*stack, self);
}

// set_ in all its forms: `self` takes the source's storage itself (shared, as
// on any device), which CPU aliases cannot express.
void emu_set_boxed(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const size_t n = op.schema().arguments().size();
  std::vector<c10::IValue> args(stack->end() - n, stack->end());
  torch::jit::drop(*stack, n);
  at::Tensor self = args[0].toTensor();
  c10::TensorImpl* impl = self.unsafeGetTensorImpl();
  if (n == 1) {  // set_(self): an empty tensor with a fresh storage
    impl->set_storage_keep_dtype(c10::Storage(c10::Storage::use_byte_size_t(), 0, g_allocator.allocate(0),
                                              &g_allocator, /*resizable=*/true));
    impl->set_sizes_contiguous({0});
  } else if (args[1].isTensor()) {  // set_(self, Tensor source)
    const at::Tensor& source = args[1].toTensor();
    TORCH_CHECK(is_emu(source), "set_: expected a source tensor on ", kEmuDevice, ", got one on ", source.device());
    impl->set_storage_keep_dtype(source.storage());
    impl->set_sizes_and_strides(source.sizes(), source.strides());
    impl->set_storage_offset(source.storage_offset());
  } else {  // set_(self, Storage source[, offset, size, stride])
    c10::Storage storage = args[1].toStorage();
    TORCH_CHECK(storage.device().type() == kEmu, "set_: expected a storage on ", kEmuDevice, ", got one on ",
                storage.device());
    const int64_t offset = n > 2 ? to_int(args[2]) : 0;
    std::vector<int64_t> size =
        n > 3 ? to_ints(args[3])
              : std::vector<int64_t>{static_cast<int64_t>(storage.nbytes() / self.dtype().itemsize())};
    std::vector<int64_t> stride = n > 4 ? to_ints(args[4]) : std::vector<int64_t>{};
    impl->set_storage_keep_dtype(std::move(storage));
    if (stride.empty()) {
      impl->set_sizes_contiguous(size);
    } else {
      impl->set_sizes_and_strides(size, stride);
    }
    impl->set_storage_offset(offset);
  }
  torch::jit::push(*stack, self);
}

// The fused RNN cells.  ATen's LSTM and GRU call _thnn_fused_lstm_cell and
// _thnn_fused_gru_cell on every non-CPU device (CUDA, XPU, PrivateUse1), and
// only CUDA implements them, so a PrivateUse1 backend must: here with ATen ops
// on the device tensors (the fallback runs each on the CPU).  The workspaces
// have CUDA's layout, which the backward kernels read: the activated gates
// [i, f, g, o] for the LSTM, [r, z, n, hx, hn] for the GRU.
std::tuple<at::Tensor, at::Tensor, at::Tensor> emu_fused_lstm_cell(
    const at::Tensor& input_gates, const at::Tensor& hidden_gates, const at::Tensor& cx,
    const c10::optional<at::Tensor>& input_bias, const c10::optional<at::Tensor>& hidden_bias) {
  at::Tensor gates = input_gates + hidden_gates;
  if (input_bias.has_value() && input_bias->defined()) {
    gates = gates + *input_bias;
  }
  if (hidden_bias.has_value() && hidden_bias->defined()) {
    gates = gates + *hidden_bias;
  }
  std::vector<at::Tensor> chunks = gates.chunk(4, 1);
  at::Tensor i = chunks[0].sigmoid();
  at::Tensor f = chunks[1].sigmoid();
  at::Tensor g = chunks[2].tanh();
  at::Tensor o = chunks[3].sigmoid();
  at::Tensor cy = f * cx + i * g;
  at::Tensor hy = o * cy.tanh();
  return std::make_tuple(hy, cy, at::cat({i, f, g, o}, 1));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> emu_fused_lstm_cell_backward_impl(
    const c10::optional<at::Tensor>& grad_hy, const c10::optional<at::Tensor>& grad_cy, const at::Tensor& cx,
    const at::Tensor& cy, const at::Tensor& workspace, bool has_bias) {
  const bool has_hy = grad_hy.has_value() && grad_hy->defined();
  const bool has_cy = grad_cy.has_value() && grad_cy->defined();
  if (!has_hy && !has_cy) {
    return std::make_tuple(at::Tensor(), at::Tensor(), at::Tensor());
  }
  std::vector<at::Tensor> gates = workspace.chunk(4, 1);
  const at::Tensor &i = gates[0], &f = gates[1], &g = gates[2], &o = gates[3];
  at::Tensor go = has_hy ? *grad_hy : at::zeros_like(cy);
  at::Tensor tanh_cy = cy.tanh();
  at::Tensor gc = go * o * (1 - tanh_cy * tanh_cy);
  if (has_cy) {
    gc = gc + *grad_cy;
  }
  at::Tensor grad_gates = at::cat({gc * g * (1 - i) * i, gc * cx * (1 - f) * f, gc * i * (1 - g * g),
                                   go * tanh_cy * (1 - o) * o},
                                  1);
  at::Tensor grad_bias = has_bias ? grad_gates.sum(0) : at::Tensor();
  return std::make_tuple(grad_gates, gc * f, grad_bias);
}

std::tuple<at::Tensor, at::Tensor> emu_fused_gru_cell(const at::Tensor& input_gates, const at::Tensor& hidden_gates,
                                                      const at::Tensor& hx,
                                                      const c10::optional<at::Tensor>& input_bias,
                                                      const c10::optional<at::Tensor>& hidden_bias) {
  at::Tensor in_gates = input_bias.has_value() && input_bias->defined() ? input_gates + *input_bias : input_gates;
  at::Tensor h_gates = hidden_bias.has_value() && hidden_bias->defined() ? hidden_gates + *hidden_bias : hidden_gates;
  std::vector<at::Tensor> ic = in_gates.chunk(3, 1);
  std::vector<at::Tensor> hc = h_gates.chunk(3, 1);
  at::Tensor r = (ic[0] + hc[0]).sigmoid();
  at::Tensor z = (ic[1] + hc[1]).sigmoid();
  at::Tensor n = (ic[2] + r * hc[2]).tanh();
  at::Tensor hy = n + z * (hx - n);
  return std::make_tuple(hy, at::cat({r, z, n, hx, hc[2]}, 1));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> emu_fused_gru_cell_backward(
    const at::Tensor& grad_hy, const at::Tensor& workspace, bool has_bias) {
  std::vector<at::Tensor> saved = workspace.chunk(5, 1);
  const at::Tensor &r = saved[0], &z = saved[1], &n = saved[2], &hx = saved[3], &hn = saved[4];
  at::Tensor gz = grad_hy * (hx - n) * (1 - z) * z;
  at::Tensor gn = grad_hy * (1 - z) * (1 - n * n);
  at::Tensor gr = gn * hn * (1 - r) * r;
  at::Tensor grad_input_gates = at::cat({gr, gz, gn}, 1);
  at::Tensor grad_hidden_gates = at::cat({gr, gz, gn * r}, 1);
  at::Tensor grad_input_bias = has_bias ? grad_input_gates.sum(0) : at::Tensor();
  at::Tensor grad_hidden_bias = has_bias ? grad_hidden_gates.sum(0) : at::Tensor();
  return std::make_tuple(grad_input_gates, grad_hidden_gates, grad_hy * z, grad_input_bias, grad_hidden_bias);
}

// _efficientzerotensor: a zero tensor that owns no memory and carries the ZeroTensor dispatch key, which
// forward-mode AD uses as the tangent of an operand that has none (x.mul(0.5): the scalar's tangent).  The
// fallback would copy the CPU kernel's result into a plain device tensor: no ZeroTensor key, and as its CPU
// original owns no memory, uninitialised values.  Built as CUDA's kernel builds it, for the device.
at::native::ZeroTensorAllocator g_zero_tensor_allocator(kEmuDevice);

void emu_efficientzerotensor(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const size_t n_arguments = op.schema().arguments().size();
  auto arguments = torch::jit::last(*stack, n_arguments);
  std::vector<int64_t> size = arguments[0].toIntVector();
  c10::ScalarType dtype = arguments[1].isNone() ? c10::typeMetaToScalarType(c10::get_default_dtype()) : arguments[1].toScalarType();
  c10::DispatchKeySet keys = c10::DispatchKeySet(c10::DispatchKey::PrivateUse1) | c10::DispatchKeySet(c10::DispatchKey::ZeroTensor);
  at::Tensor zeros = at::detail::empty_generic(size, &g_zero_tensor_allocator, keys, dtype, c10::nullopt);
  torch::jit::drop(*stack, n_arguments);
  torch::jit::push(*stack, std::move(zeros));
}

TORCH_LIBRARY_IMPL(_, PrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&emu_fallback>());
}

TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) {
  m.impl("_copy_from", TORCH_FN(emu_copy_from));
  m.impl("_copy_from_and_resize", TORCH_FN(emu_copy_from_and_resize));
  m.impl("resize_", torch::CppFunction::makeFromBoxedFunction<&emu_resize_boxed>());
  m.impl("set_", torch::CppFunction::makeFromBoxedFunction<&emu_set_boxed>());
  m.impl("set_.source_Tensor", torch::CppFunction::makeFromBoxedFunction<&emu_set_boxed>());
  m.impl("set_.source_Storage", torch::CppFunction::makeFromBoxedFunction<&emu_set_boxed>());
  m.impl("set_.source_Storage_storage_offset", torch::CppFunction::makeFromBoxedFunction<&emu_set_boxed>());
  m.impl("convolution_overrideable", torch::CppFunction::makeFromBoxedFunction<&emu_convolution>());
  m.impl("convolution_backward_overrideable",
         torch::CppFunction::makeFromBoxedFunction<&emu_convolution_backward>());
  m.impl("_thnn_fused_lstm_cell", TORCH_FN(emu_fused_lstm_cell));
  m.impl("_thnn_fused_lstm_cell_backward_impl", TORCH_FN(emu_fused_lstm_cell_backward_impl));
  m.impl("_thnn_fused_gru_cell", TORCH_FN(emu_fused_gru_cell));
  m.impl("_thnn_fused_gru_cell_backward", TORCH_FN(emu_fused_gru_cell_backward));
  m.impl("_efficientzerotensor", torch::CppFunction::makeFromBoxedFunction<&emu_efficientzerotensor>());
}

// copy_ reaches a backend's _copy_from with the source's conj/neg bits still
// set; the math-bit fallbacks would resolve them with clone, which copies with
// _copy_from again.  emu_copy_from honours the bits itself (the CPU alias keeps
// them and the CPU copy resolves them), so those keys fall through.
TORCH_LIBRARY_IMPL(aten, Conjugate, m) {
  m.impl("_copy_from", torch::CppFunction::makeFallthrough());
  m.impl("_copy_from_and_resize", torch::CppFunction::makeFallthrough());
}
TORCH_LIBRARY_IMPL(aten, Negative, m) {
  m.impl("_copy_from", torch::CppFunction::makeFallthrough());
  m.impl("_copy_from_and_resize", torch::CppFunction::makeFallthrough());
}

// Autocast: a PrivateUse1 backend registers its own kernels for its autocast
// key (AutocastPrivateUse1), or every op under torch.autocast("emu") fails with
// "Could not run ... from the 'Autocastemu' backend".  Ops autocast has no
// policy for fall through; the others get the casting policies of the op lists
// torch keeps for any backend to reuse (autocast_mode.h, from torch 2.4; the
// lists CUDA uses): matmul, linear, conv in the autocast dtype, the
// precision-sensitive ops in float32, the multi-input ops promoted.  Torch 2.1
// to 2.3 have no such lists: there the matrix-multiplication family only.
// Torch 2.1 to 2.3 ask the device module for its autocast state
// (torch.emu.is_autocast_enabled() ...); it lives in ATen, so the emulator
// exposes it as operators of its own namespace (torch.ops.emu.*).
// The dtype comes back as an empty tensor of that dtype: an operator returning a
// ScalarType gives Python a bare int.
#if defined(AT_FORALL_LOWER_PRECISION_FP)  // torch >= 2.4: the state is per device type
bool emu_is_autocast_enabled() { return at::autocast::is_autocast_enabled(c10::DeviceType::PrivateUse1); }
void emu_set_autocast_enabled(bool enabled) { at::autocast::set_autocast_enabled(c10::DeviceType::PrivateUse1, enabled); }
at::Tensor emu_get_autocast_dtype() { return at::empty({0}, at::TensorOptions().dtype(at::autocast::get_autocast_dtype(c10::DeviceType::PrivateUse1))); }
void emu_set_autocast_dtype(at::ScalarType dtype) { at::autocast::set_autocast_dtype(c10::DeviceType::PrivateUse1, dtype); }
#else
bool emu_is_autocast_enabled() { return at::autocast::is_privateuseone_enabled(); }
void emu_set_autocast_enabled(bool enabled) { at::autocast::set_privateuseone_enabled(enabled); }
at::Tensor emu_get_autocast_dtype() { return at::empty({0}, at::TensorOptions().dtype(at::autocast::get_autocast_privateuseone_dtype())); }
void emu_set_autocast_dtype(at::ScalarType dtype) { at::autocast::set_autocast_privateuseone_dtype(dtype); }
#endif

TORCH_LIBRARY(emu, m) {
  m.def("is_autocast_enabled() -> bool", &emu_is_autocast_enabled);
  m.def("set_autocast_enabled(bool enabled) -> ()", &emu_set_autocast_enabled);
  m.def("get_autocast_dtype() -> Tensor", &emu_get_autocast_dtype);
  m.def("set_autocast_dtype(ScalarType dtype) -> ()", &emu_set_autocast_dtype);
}

TORCH_LIBRARY_IMPL(_, AutocastPrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFallthrough());
}
TORCH_LIBRARY_IMPL(aten, AutocastPrivateUse1, m) {
#if defined(AT_FORALL_LOWER_PRECISION_FP)
#define EMU_AUTOCAST_IN_LOWER_PRECISION(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, lower_precision_fp)
#define EMU_AUTOCAST_IN_FLOAT32(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, fp32)
#define EMU_AUTOCAST_IN_FLOAT32_SET_OPT_DTYPE(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, fp32_set_opt_dtype)
#define EMU_AUTOCAST_PROMOTED(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, promote)
  AT_FORALL_LOWER_PRECISION_FP(EMU_AUTOCAST_IN_LOWER_PRECISION)
  AT_FORALL_FP32(EMU_AUTOCAST_IN_FLOAT32)
  AT_FORALL_FP32_SET_OPT_DTYPE(EMU_AUTOCAST_IN_FLOAT32_SET_OPT_DTYPE)
  AT_FORALL_PROMOTE(EMU_AUTOCAST_PROMOTED)
#undef EMU_AUTOCAST_IN_LOWER_PRECISION
#undef EMU_AUTOCAST_IN_FLOAT32
#undef EMU_AUTOCAST_IN_FLOAT32_SET_OPT_DTYPE
#undef EMU_AUTOCAST_PROMOTED
#else
  KERNEL_PRIVATEUSEONE(mm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(matmul, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(linear, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(addmm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(bmm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(baddbmm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(addbmm, lower_precision_fp)
#endif
}

// Structured operators have, besides their CPU and CUDA kernels, a generic
// kernel (CompositeExplicitAutogradNonFunctional) for other backends that
// allocates the output and calls the out= form; for reductions such as
// mse_loss(reduction="sum") that output is 0-dim and the CPU kernel resizes it
// with a deprecation warning.  A backend with kernels of its own, like CUDA,
// never takes that path, so the emulator registers the fallback for each such
// operator that has a CPU kernel: it runs the CPU kernel itself.
void route_structured_operators_to_their_cpu_kernels() {
  static auto* library =
      new torch::Library(torch::Library::IMPL, "aten", c10::DispatchKey::PrivateUse1, __FILE__, __LINE__);
  auto& dispatcher = c10::Dispatcher::singleton();
  for (const c10::OperatorName& name : dispatcher.getAllOpNames()) {
    if (name.name.rfind("aten::", 0) != 0) {
      continue;
    }
    auto op = dispatcher.findOp(name);
    if (!op || !op->hasKernelForDispatchKey(c10::DispatchKey::CompositeExplicitAutogradNonFunctional) ||
        !op->hasKernelForDispatchKey(c10::DispatchKey::CPU) || op->hasKernelForDispatchKey(c10::DispatchKey::PrivateUse1)) {
      continue;
    }
    std::string qualified = name.name.substr(6) + (name.overload_name.empty() ? "" : "." + name.overload_name);
    library->impl(qualified.c_str(), torch::CppFunction::makeFromBoxedFunction<&emu_fallback>());
  }
}

// Registered at load time; the hooks object lives as long as the process.
struct RegisterEmu {
  RegisterEmu() {
    c10::SetAllocator(kEmu, &g_allocator);
    at::RegisterPrivateUse1HooksInterface(new EmuHooks());
    route_structured_operators_to_their_cpu_kernels();
  }
};
RegisterEmu g_register_emu;

}  // namespace
