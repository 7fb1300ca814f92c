// `larmor info`: what this build can do on this machine: devices, threads, and the op table with the
// devices each op has a kernel for.
#include <cstdio>
#include <memory>

#include "engine/cuda_runtime.h"
#include "engine/thread_pool.h"
#include "kernels/op.h"
#include "tools/cli/commands.h"

namespace larmor::cli {

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show the build, the devices and the op table");
  auto list_ops = std::make_shared<bool>(false);
  cmd->add_flag("--ops", *list_ops, "List every op with the devices it has kernels for");
  cmd->callback([list_ops] {
    std::printf("larmor %s\n", kVersion);
#ifdef LARMOR_WITH_CUDA
    std::printf("CUDA backend: built\n");
#else
    std::printf("CUDA backend: not built\n");
#endif
    int n = cuda_device_count();
    std::printf("CUDA devices: %d", n);
    for (int i = 0; i < n; ++i) std::printf("%s cuda:%d %s", i ? "," : "", i, cuda_device_name(i).c_str());
    std::printf("\nCPU threads: %d\n", num_threads());
    int cuda_ops = 0, diff = 0;
    for (int i = 0; i < kNumOps; ++i) {
      const OpDef& d = op_def(static_cast<OpId>(i));
      cuda_ops += d.forward[1] != nullptr;
      diff += d.backward != nullptr;
    }
    std::printf("ops: %d (%d differentiable, %d with a CUDA kernel)\n", kNumOps, diff, cuda_ops);
    if (*list_ops) {
      for (int i = 0; i < kNumOps; ++i) {
        const OpDef& d = op_def(static_cast<OpId>(i));
        std::printf("  %-28s cpu%s%s\n", d.name, d.forward[1] ? " cuda" : "", d.backward ? "  (grad)" : "");
      }
    }
  });
}

}  // namespace larmor::cli
