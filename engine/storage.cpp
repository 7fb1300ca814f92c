#include "engine/storage.h"

#include "engine/cuda_runtime.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

namespace larmor {
namespace {

// The CPU allocator caches large blocks. Why: every op writes a fresh output tensor, and glibc serves big
// requests with mmap and returns them with munmap, so each forward paid page faults and kernel zeroing for
// every large intermediate (the shift model's (B, H, N, N) logits are 100+ MB at B = 64). Measured on the
// 2-core dev machine, one thread: shift-model inference at B = 64, N = 108 took 4.99 s with plain
// aligned_alloc and 2.05 s when glibc kept the memory (GLIBC_TUNABLES mmap/trim thresholds), the same
// figure this cache gives. Blocks of at least kMinCached bytes are rounded up (64 KiB steps below 2 MiB,
// 2 MiB steps above), kept on free after use, and handed out again best-fit when no more than 1/8 larger
// than asked; the cache holds at most a quarter of physical memory (LARMOR_CPU_CACHE_MB overrides; 0 turns
// caching off) and gives the smallest blocks back first when full. Small blocks go straight to the C
// allocator, which already recycles them. Results never depend on the cache: it only changes which
// addresses tensors get.
class CpuAllocator final : public Allocator {
 public:
  CpuAllocator() {
    if (const char* e = std::getenv("LARMOR_CPU_CACHE_MB")) {
      cap_ = static_cast<size_t>(std::strtoull(e, nullptr, 10)) << 20;
    } else {
      long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
      cap_ = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) / 4 : (size_t{1} << 30);
    }
  }
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    if (nbytes < kMinCached || cap_ == 0) return raw_alloc((nbytes + 63) / 64 * 64, nbytes);
    const size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lk(m_);
    void* p = nullptr;
    size_t block = size;
    auto it = free_.lower_bound(size);
    if (it != free_.end() && it->first <= size + size / 8) {
      block = it->first;
      p = it->second;
      free_.erase(it);
      cached_ -= block;
    } else {
      p = std::aligned_alloc(64, size);
      if (!p) {
        release_locked();
        p = raw_alloc(size, nbytes);
      }
    }
    blocks_[p] = block;
    live_ += block;
    peak_ = std::max(peak_, live_);
    return p;
  }
  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    if (nbytes < kMinCached || cap_ == 0) {
      std::free(ptr);
      return;
    }
    std::lock_guard<std::mutex> lk(m_);
    auto b = blocks_.find(ptr);
    if (b == blocks_.end()) {  // not one of ours (cannot happen through Storage); do not cache it
      std::free(ptr);
      return;
    }
    const size_t block = b->second;
    blocks_.erase(b);
    live_ -= block;
    if (block > cap_) {
      std::free(ptr);
      return;
    }
    while (cached_ + block > cap_ && !free_.empty()) {
      auto it = free_.begin();
      cached_ -= it->first;
      std::free(it->second);
      free_.erase(it);
    }
    free_.emplace(block, ptr);
    cached_ += block;
  }
  void copy_to_host(void* dst, const void* src, size_t n) override { if (n) std::memcpy(dst, src, n); }
  void copy_from_host(void* dst, const void* src, size_t n) override { if (n) std::memcpy(dst, src, n); }
  void copy_device(void* dst, const void* src, size_t n) override { if (n) std::memmove(dst, src, n); }
  void fill_zero(void* dst, size_t n) override { if (n) std::memset(dst, 0, n); }

  CpuMemoryStats stats() {
    std::lock_guard<std::mutex> lk(m_);
    return {live_, peak_, cached_, cap_};
  }
  void release() {
    std::lock_guard<std::mutex> lk(m_);
    release_locked();
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lk(m_);
    peak_ = live_;
  }

 private:
  static constexpr size_t kMinCached = size_t{64} << 10;
  static size_t round_size(size_t n) {
    const size_t step = n < (size_t{2} << 20) ? kMinCached : (size_t{2} << 20);
    return (n + step - 1) / step * step;
  }
  static void* raw_alloc(size_t rounded, size_t nbytes) {
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw Error("cpu allocator: out of memory allocating " + std::to_string(nbytes) + " bytes");
    return p;
  }
  void release_locked() {
    for (auto& [size, p] : free_) std::free(p);
    free_.clear();
    cached_ = 0;
  }

  std::mutex m_;
  std::multimap<size_t, void*> free_;           // cached free blocks by size
  std::unordered_map<void*, size_t> blocks_;    // live cached-class blocks -> their size
  size_t live_ = 0, peak_ = 0, cached_ = 0, cap_ = 0;
};

CpuAllocator& cpu_allocator() {
  // Never destroyed: tensors held by other statics may be freed after this function's statics die.
  static CpuAllocator* cpu = new CpuAllocator();
  return *cpu;
}

Allocator* g_allocators[kNumDeviceTypes] = {nullptr, nullptr};

}  // namespace

Allocator& allocator_for(DeviceType t) {
  if (t == DeviceType::CPU) return cpu_allocator();
  Allocator* a = g_allocators[static_cast<int>(t)];
  if (!a && t == DeviceType::CUDA) a = g_allocators[static_cast<int>(t)] = cuda_allocator();
  if (!a) throw Error("device cuda requested but CUDA is not available (no CUDA build or no GPU/driver found)");
  return *a;
}

CpuMemoryStats cpu_memory_stats() { return cpu_allocator().stats(); }
void cpu_cache_release() { cpu_allocator().release(); }
void cpu_memory_reset_peak() { cpu_allocator().reset_peak(); }

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
