// A fixed pool of worker threads for CPU kernels. parallel_for splits [begin, end) into contiguous
// chunks; each index is computed by exactly one thread with no cross-thread reduction, so results do
// not depend on the thread count (deterministic CPU kernels). Threads: LARMOR_NUM_THREADS or the core
// count. Nested calls run serially on the calling thread.
#pragma once
#include <cstdint>
#include <functional>

namespace larmor {

// fn(lo, hi) processes indices [lo, hi). grain = minimum indices per chunk (small loops stay serial).
void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
int num_threads();
void set_num_threads(int n);

}  // namespace larmor
