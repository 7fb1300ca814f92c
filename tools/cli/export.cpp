// `larmor export`: a weights-only, half-precision copy of a checkpoint for shipping (models/). The optimizer
// state is dropped, f32 weights are stored as f16 (default) or bf16, the metadata (model config, standardiser,
// data options) is kept, and the copy is loaded back as the model its "task" metadata names (a shift model or an
// alignment model) to check it is usable.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "chem/align_training.h"
#include "chem/shift_training.h"
#include "layers/checkpoint.h"
#include "tools/cli/commands.h"

namespace larmor::cli {
namespace {

struct ExportArgs {
  std::string model, out, dtype = "f16", note;
};

void run_export(const ExportArgs& a) {
  const StoredFloat kind = parse_stored_float(a.dtype);
  std::map<std::string, std::string> extra;
  if (!a.note.empty()) extra["note"] = a.note;
  extra["exported_from"] = std::filesystem::path(a.model).filename().string();
  const size_t n = export_checkpoint(a.model, a.out, kind, extra);
  const std::map<std::string, std::string> meta = load_safetensors(a.out).metadata;
  const auto task = meta.find("task");
  if (task != meta.end() && task->second == "align") chem::load_align_model(a.out);  // throws when not loadable
  else chem::load_shift_model(a.out);
  std::printf("%s: %zu tensors stored as %s, %.2f MB (from %.2f MB)\n", a.out.c_str(), n, stored_float_name(kind),
              std::filesystem::file_size(a.out) / 1e6, std::filesystem::file_size(a.model) / 1e6);
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand("export", "Write a weights-only (f16/bf16) copy of a shift-model or alignment-model checkpoint");
  cmd->add_option("--model", a->model, "checkpoint to export (best.safetensors)")->required();
  cmd->add_option("--out", a->out, "output .safetensors")->required();
  cmd->add_option("--dtype", a->dtype, "storage of f32 weights: f16, bf16 or f32")->capture_default_str();
  cmd->add_option("--note", a->note, "a note stored in the metadata (how the model was trained)");
  cmd->callback([a] { run_export(*a); });
}

}  // namespace larmor::cli
