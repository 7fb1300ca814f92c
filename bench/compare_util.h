// What bench_shift_compare and bench_align_compare share: `--key value` arguments, the batch-size list, the
// `time` command's options and its timing loop (two warm-up calls, then the median of `repeats` calls),
// and main()'s dispatch with one error line and exit status 1 on any failure. Header-only: each tool is one
// source file. (The tools take plain `--key value` pairs rather than CLI11 so they build on the GPU machine,
// which has no CLI11.)
#pragma once
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "chem/split.h"
#include "engine/cuda_runtime.h"
#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/thread_pool.h"

namespace larmor::bench {

struct Args {
  std::string tool, command;
  std::map<std::string, std::string> opt;
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = opt.find(k);
    return it == opt.end() ? def : it->second;
  }
  std::string need(const std::string& k) const {
    auto it = opt.find(k);
    if (it == opt.end()) throw Error(command + ": --" + k + " is required");
    return it->second;
  }
};

inline Args parse_args(int argc, char** argv, const std::string& tool, const std::string& source) {
  if (argc < 2) throw Error("usage: " + tool + " export|time --key value ... (see the top of " + source + ")");
  Args a;
  a.tool = tool;
  a.command = argv[1];
  for (int i = 2; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) throw Error(tool + ": expected '--key value', got '" + k + "'");
    a.opt[k.substr(2)] = argv[i + 1];
  }
  return a;
}

// "16,64,256" -> {16, 64, 256}; every size positive.
inline std::vector<int64_t> parse_sizes(const std::string& s) {
  std::vector<int64_t> out;
  size_t p = 0;
  while (p <= s.size()) {
    size_t q = s.find(',', p);
    if (q == std::string::npos) q = s.size();
    const int64_t v = std::stoll(s.substr(p, q - p));
    if (v <= 0) throw Error("--batch-sizes: sizes must be positive, got '" + s + "'");
    out.push_back(v);
    p = q + 1;
  }
  return out;
}

// The `export` command's common options: --data, --model, --out (required), --split (default test),
// --batch-sizes (default `default_sizes`), --seed (default 1).
struct ExportOptions {
  std::string data, model, out, split_name;
  chem::Split split = chem::Split::Test;
  std::vector<int64_t> sizes;
  uint64_t seed = 1;
};
inline ExportOptions export_options(const Args& a, const std::string& default_sizes) {
  ExportOptions e;
  e.data = a.need("data");
  e.model = a.need("model");
  e.out = a.need("out");
  e.split_name = a.get("split", "test");
  if (e.split_name == "train") e.split = chem::Split::Train;
  else if (e.split_name == "valid") e.split = chem::Split::Valid;
  else if (e.split_name == "test") e.split = chem::Split::Test;
  else throw Error("export: --split must be train, valid or test, got '" + e.split_name + "'");
  e.sizes = parse_sizes(a.get("batch-sizes", default_sizes));
  e.seed = std::stoull(a.get("seed", "1"));
  return e;
}

// The `time` command's options: --mode infer|train, --threads T (0: default; applied here), --repeats R,
// --device cpu|cuda.
struct TimeOptions {
  std::string mode;
  int repeats = 10;
  Device device = Device::cpu();
};
inline TimeOptions time_options(const Args& a) {
  TimeOptions t;
  t.mode = a.get("mode", "infer");
  if (t.mode != "infer" && t.mode != "train") throw Error("time: --mode must be infer or train, got '" + t.mode + "'");
  const int threads = std::stoi(a.get("threads", "0"));
  t.repeats = std::stoi(a.get("repeats", "10"));
  if (t.repeats < 1) throw Error("time: --repeats must be at least 1");
  if (threads > 0) set_num_threads(threads);
  t.device = Device::parse(a.get("device", "cpu"));
  return t;
}

struct Timing {
  double median_ms = 0, min_ms = 0;
};
// Two warm-up calls, then `repeats` timed ones (wall clock; the call synchronises the device itself).
inline Timing time_calls(const std::function<void()>& call, int repeats) {
  call();
  call();
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front()};
}
inline void sync_device(Device d) {
  if (d.is_cuda()) cuda_synchronize();
}

// Peak resident memory of this process (model, batch and all intermediates; the CPU figure both sides report).
inline double max_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

// One JSON line in the shape the PyTorch references print (bench/reference/harness.py); `sizes` is the
// batch's size fields as JSON members, e.g. "\"N\": 65".
inline void report(const TimeOptions& t, int64_t batch_size, const std::string& sizes, const Timing& tm) {
  std::printf("{\"engine\": \"larmor\", \"mode\": \"%s\", \"device\": \"%s\", \"threads\": %d, \"B\": %lld, %s, "
              "\"median_ms\": %.3f, \"min_ms\": %.3f, \"molecules_per_s\": %.1f, \"max_rss_mib\": %.1f}\n",
              t.mode.c_str(), t.device.str().c_str(), num_threads(), static_cast<long long>(batch_size), sizes.c_str(),
              tm.median_ms, tm.min_ms, static_cast<double>(batch_size) / (tm.median_ms / 1000.0), max_rss_mib());
}

// main(): parse, run `export` or `time`, and turn any exception into one error line and exit status 1.
inline int run_tool(int argc, char** argv, const std::string& tool, const std::string& source,
                    const std::function<int(const Args&)>& run_export, const std::function<int(const Args&)>& run_time) {
  try {
    const Args a = parse_args(argc, argv, tool, source);
    if (a.command == "export") return run_export(a);
    if (a.command == "time") return run_time(a);
    throw Error(tool + ": unknown command '" + a.command + "' (export or time)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace larmor::bench
