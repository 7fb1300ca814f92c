// The CPU allocator's cache of large blocks (engine/storage.cpp): reuse, accounting, release, and that a
// reused block never leaks old values into tensors that promise to be initialised.
#include <doctest/doctest.h>

#include "engine/storage.h"
#include "engine/tensor.h"

using namespace larmor;

TEST_CASE("cpu allocator: a freed large block is reused for the next request of its size") {
  cpu_cache_release();
  const CpuMemoryStats before = cpu_memory_stats();
  CHECK(before.cached == 0);
  const void* first = nullptr;
  {
    Tensor t = Tensor::full({256, 1024}, 3.0);  // 1 MiB of f32
    first = t.raw_data();
    const CpuMemoryStats during = cpu_memory_stats();
    CHECK(during.live >= before.live + (size_t{1} << 20));
    CHECK(during.peak >= during.live);
  }
  const CpuMemoryStats after = cpu_memory_stats();
  CHECK(after.live == before.live);
  CHECK(after.cached >= (size_t{1} << 20));

  Tensor again = Tensor::zeros({256, 1024});  // same size: the cached block, zero-filled
  CHECK(again.raw_data() == first);
  CHECK(cpu_memory_stats().cached == after.cached - (size_t{1} << 20));
  const std::vector<float> v = again.to_vector<float>();
  bool all_zero = true;
  for (float x : v) all_zero = all_zero && x == 0.0f;
  CHECK(all_zero);
}

TEST_CASE("cpu allocator: small tensors bypass the cache; release frees every cached block") {
  cpu_cache_release();
  const CpuMemoryStats before = cpu_memory_stats();
  {
    Tensor small = Tensor::ones({100});  // 400 bytes
    CHECK(cpu_memory_stats().live == before.live);
    Tensor big = Tensor::ones({4, 1 << 16});  // 1 MiB
  }
  CHECK(cpu_memory_stats().cached > 0);
  cpu_cache_release();
  CHECK(cpu_memory_stats().cached == 0);
  CHECK(cpu_memory_stats().cap > 0);
}
