// Module checkpoints on top of safetensors: every parameter and buffer under its dotted name, the
// optimizer state (if given) under "optim.m.<name>", "optim.v.<name>", "optim.step.<name>", and string
// metadata (the model config as a JSON string, step, epoch, ...). Loading is strict: every parameter and
// buffer must be present with the same shape and dtype, and nothing else (outside "optim.") may be
// in the file, so a checkpoint never silently half-loads into a different architecture.
#pragma once
#include <map>
#include <string>

#include "layers/module.h"
#include "layers/optim.h"
#include "layers/safetensors.h"

namespace larmor {

// Adds metadata["format"] = "larmor-checkpoint-1". Atomic (see save_safetensors).
void save_checkpoint(const std::string& path, const Module& module, const std::map<std::string, std::string>& metadata = {},
                     const AdamW* optimizer = nullptr);

// Copies the stored values into the module's tensors in place (they keep their device) and, if an
// optimizer is given, restores its state (which must then be in the file). Returns the metadata.
// Throws a larmor::Error naming the file and listing missing, unexpected and mismatched tensors.
std::map<std::string, std::string> load_checkpoint(const std::string& path, Module& module, AdamW* optimizer = nullptr);

// A weights-only copy for shipping: every tensor of `in` except the optimizer state ("optim.*"), F32
// tensors stored as `f32_as` (F16/BF16 halve the file; they load back as F32), the metadata kept and
// `extra_metadata` added (it may overwrite keys). Returns the number of tensors written. Atomic.
size_t export_checkpoint(const std::string& in, const std::string& out, StoredFloat f32_as,
                         const std::map<std::string, std::string>& extra_metadata = {});

}  // namespace larmor
