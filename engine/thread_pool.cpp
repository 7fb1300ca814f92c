#include "engine/thread_pool.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace larmor {
namespace {

class ThreadPool {
 public:
  explicit ThreadPool(int n) { resize(n); }
  ~ThreadPool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    n = std::max(1, n);
    quit_ = false;
    for (int i = 0; i < n - 1; ++i) workers_.emplace_back([this, i] { loop(i + 1); });
  }

  // Runs task(t) for t in [0, ntasks) across the pool; the caller runs task 0... and waits.
  void run(int ntasks, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> lk(m_);
    task_ = &task;
    ntasks_ = ntasks;
    next_ = 0;
    pending_ = ntasks;
    error_ = nullptr;
    ++generation_;
    cv_.notify_all();
    lk.unlock();
    work();
    lk.lock();
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    for (;;) {
      int t;
      {
        std::lock_guard<std::mutex> lk(m_);
        if (!task_ || next_ >= ntasks_) return;
        t = next_++;
      }
      try {
        (*task_)(t);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(m_);
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }

  void loop(int) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
        if (quit_) return;
        seen = generation_;
      }
      work();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
      cv_.notify_all();
    }
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* task_ = nullptr;
  int ntasks_ = 0, next_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  bool quit_ = false;
  std::exception_ptr error_;
};

int default_threads() {
  if (const char* e = std::getenv("LARMOR_NUM_THREADS")) {
    int n = std::atoi(e);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool& pool() {
  static ThreadPool p(default_threads());
  return p;
}
thread_local bool t_inside = false;
std::mutex g_run_mutex;

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) {
  std::lock_guard<std::mutex> lk(g_run_mutex);
  pool().resize(n);
}

void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  int64_t n = end - begin;
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t max_chunks = (n + grain - 1) / grain;
  int nt = num_threads();
  if (t_inside || nt == 1 || max_chunks <= 1) {
    fn(begin, end);
    return;
  }
  int chunks = static_cast<int>(std::min<int64_t>(max_chunks, nt));
  int64_t per = (n + chunks - 1) / chunks;
  std::lock_guard<std::mutex> lk(g_run_mutex);
  pool().run(chunks, [&](int c) {
    int64_t lo = begin + c * per, hi = std::min(end, lo + per);
    t_inside = true;
    try {
      if (lo < hi) fn(lo, hi);
    } catch (...) {
      t_inside = false;
      throw;
    }
    t_inside = false;
  });
}

}  // namespace larmor
