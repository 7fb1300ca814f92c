#pragma once
#include <CLI/CLI.hpp>

namespace larmor::cli {

inline constexpr const char* kVersion = "0.1.0";

void add_info_command(CLI::App& app);  // build, devices, threads, op table
void add_demo_command(CLI::App& app);  // the demo job run by tools/demo.sh
void add_prepare_command(CLI::App& app);  // build the prepared dataset (Open Babel)
void add_train_command(CLI::App& app);    // train shift, eval shift (train.cpp)
void add_pretrain_command(CLI::App& train);  // train pretrain (pretrain.cpp), under `train`
void add_align_command(CLI::App& parent);    // train align / eval align (align.cpp), under `train` and `eval`
void add_predict_command(CLI::App& app);
void add_assign_command(CLI::App& app);   // 13C peak list -> carbons (assign.cpp)
void add_retrieve_command(CLI::App& app);  // index + retrieve: spectrum -> structure search (retrieve.cpp)
void add_export_command(CLI::App& app);   // weights-only f16/bf16 copy of a checkpoint (export.cpp)  // predict shifts with a trained model (predict.cpp)

}  // namespace larmor::cli
