#include "engine/storage.h"

#include "engine/cuda_runtime.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace larmor {
namespace {

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw Error("cpu allocator: out of memory allocating " + std::to_string(nbytes) + " bytes");
    return p;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
  void copy_to_host(void* dst, const void* src, size_t n) override { if (n) std::memcpy(dst, src, n); }
  void copy_from_host(void* dst, const void* src, size_t n) override { if (n) std::memcpy(dst, src, n); }
  void copy_device(void* dst, const void* src, size_t n) override { if (n) std::memmove(dst, src, n); }
  void fill_zero(void* dst, size_t n) override { if (n) std::memset(dst, 0, n); }
};

Allocator* g_allocators[kNumDeviceTypes] = {nullptr, nullptr};

}  // namespace

Allocator& allocator_for(DeviceType t) {
  // Never destroyed: tensors held by other statics may be freed after this function's statics die.
  static CpuAllocator* cpu = new CpuAllocator();
  if (t == DeviceType::CPU) return *cpu;
  Allocator* a = g_allocators[static_cast<int>(t)];
  if (!a && t == DeviceType::CUDA) a = g_allocators[static_cast<int>(t)] = cuda_allocator();
  if (!a) throw Error("device cuda requested but CUDA is not available (no CUDA build or no GPU/driver found)");
  return *a;
}

void register_allocator(DeviceType t, Allocator* a) { g_allocators[static_cast<int>(t)] = a; }

bool device_available(DeviceType t) {
  if (t == DeviceType::CPU) return true;
  return g_allocators[static_cast<int>(t)] != nullptr || (t == DeviceType::CUDA && cuda_available());
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  alloc_ = &allocator_for(device.type);
  data_ = alloc_->allocate(nbytes);
}

Storage::~Storage() {
  if (data_) alloc_->deallocate(data_, nbytes_);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      return cuda(std::stoi(s.substr(5)));
    } catch (...) {
    }
  }
  throw Error("unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

}  // namespace larmor
