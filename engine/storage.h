// Storage: one owned, device-resident byte buffer. Tensors share a Storage through shared_ptr, so
// reshape and leading-axis slices are cheap views (offset + shape) and never copy.
//
// Allocation goes through the Allocator interface, one per device type. The CPU allocator returns
// 64-byte aligned memory (Eigen/AVX friendly) and caches large blocks (storage.cpp says why). The CUDA
// caching allocator (no cudaMalloc per op) is registered by the CUDA runtime when the engine is built with
// CUDA and a device is present.
#pragma once
#include <cstddef>
#include <memory>

#include "engine/dtype.h"

namespace larmor {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  // Copies between host and this allocator's device (or within the device).
  virtual void copy_to_host(void* host_dst, const void* dev_src, size_t nbytes) = 0;
  virtual void copy_from_host(void* dev_dst, const void* host_src, size_t nbytes) = 0;
  virtual void copy_device(void* dev_dst, const void* dev_src, size_t nbytes) = 0;
  virtual void fill_zero(void* dev_dst, size_t nbytes) = 0;
};

// The allocator for a device type; throws larmor::Error if that device type is unavailable.
Allocator& allocator_for(DeviceType t);
// Registers the allocator for a device type (the CUDA runtime calls this once).
void register_allocator(DeviceType t, Allocator* a);
bool device_available(DeviceType t);

// The CPU allocator's cache of large blocks (see storage.cpp): bytes in live cached-class blocks, their
// peak since the last reset, bytes held free for reuse, and the cache's cap. Blocks under 64 KiB are not
// counted (they go straight to the C allocator).
struct CpuMemoryStats {
  size_t live = 0, peak = 0, cached = 0, cap = 0;
};
CpuMemoryStats cpu_memory_stats();
void cpu_cache_release();      // frees every cached block
void cpu_memory_reset_peak();  // peak = live

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* alloc_ = nullptr;
};

}  // namespace larmor
