// CUDA runtime: device detection and a caching device allocator.
//
// Detection: cudaGetDeviceCount returns an error (35, "driver insufficient", or 100, "no device") on
// machines without a GPU and may leave the count untouched, so the count starts at 0 and every error
// means "no GPU"; the sticky error is cleared (ENGINE.md C5).
//
// Allocation: cudaMalloc/cudaFree synchronise the device and cost microseconds, far more than most of
// our kernels, so freed blocks go to per-size free lists (sizes rounded up to 512 B, or to 2 MiB
// above 1 MiB) and are reused; memory returns to the driver only at exit or on an allocation failure.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/cuda_runtime.h"
#include "engine/error.h"

namespace larmor {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

size_t round_size(size_t n) {
  if (n <= (1u << 20)) return (n + 511) / 512 * 512;
  return (n + (2u << 20) - 1) / (2u << 20) * (2u << 20);
}

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    size_t size = round_size(nbytes);
    {
      std::lock_guard<std::mutex> lk(m_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        return p;
      }
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e != cudaSuccess) {
      cudaGetLastError();
      release_cached();
      check(cudaMalloc(&p, size), "cudaMalloc (device out of memory?)");
    }
    return p;
  }
  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lk(m_);
    free_[round_size(nbytes)].push_back(ptr);
  }
  void copy_to_host(void* dst, const void* src, size_t n) override {
    check(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "cudaMemcpy device->host");
  }
  void copy_from_host(void* dst, const void* src, size_t n) override {
    check(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "cudaMemcpy host->device");
  }
  void copy_device(void* dst, const void* src, size_t n) override {
    check(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice), "cudaMemcpy device->device");
  }
  void fill_zero(void* dst, size_t n) override { check(cudaMemset(dst, 0, n), "cudaMemset"); }

  void release_cached() {
    std::lock_guard<std::mutex> lk(m_);
    for (auto& [size, ptrs] : free_)
      for (void* p : ptrs) cudaFree(p);
    free_.clear();
  }

 private:
  std::mutex m_;
  std::map<size_t, std::vector<void*>> free_;
};

}  // namespace

int cuda_device_count() {
  static int count = [] {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

bool cuda_available() { return cuda_device_count() > 0; }

std::string cuda_device_name(int index) {
  if (index < 0 || index >= cuda_device_count()) return "";
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, index) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return p.name;
}

Allocator* cuda_allocator() {
  if (!cuda_available()) return nullptr;
  static CachingAllocator* a = new CachingAllocator();  // leaked on purpose: outlives every Storage
  return a;
}

void cuda_check_last(const char* what) { check(cudaGetLastError(), what); }
void cuda_synchronize() {
  if (cuda_available()) check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

}  // namespace larmor
