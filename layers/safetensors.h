// Checkpoint files in the safetensors format (https://github.com/huggingface/safetensors), so a larmor
// checkpoint opens in Python with `safetensors.torch.load_file` and vice versa:
//   8 bytes   little-endian u64 N (header length)
//   N bytes   JSON {"<name>": {"dtype": "F32"|"F64"|"I32"|"I64"|"F16"|"BF16", "shape": [...], "data_offsets": [b, e]},
//                   ..., "__metadata__": {"<key>": "<string>", ...}}  (space-padded to 8-byte alignment)
//   data      raw little-endian tensors, contiguous, sorted by name; offsets relative to the data start.
// Writes are atomic (temporary file, fsync, rename), so a crash never leaves a half-written checkpoint
// under the real name. Loading verifies everything it reads and throws a larmor::Error naming the file
// and the problem (truncated file, bad JSON, out-of-range or overlapping offsets, unknown dtype, ...).
#pragma once
#include <map>
#include <string>

#include "engine/tensor.h"

namespace larmor {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;  // CPU tensors
  std::map<std::string, std::string> metadata;
};

// How F32 tensors are stored: as they are, or rounded (to nearest even) to IEEE half ("F16") or bfloat16
// ("BF16"), which halves a shipped model. A tensor outside the f16 range (|x| > 65504) stays F32. Loading
// reads F16 and BF16 entries into F32 tensors, so a half-stored checkpoint loads like an f32 one.
enum class StoredFloat { F32, F16, BF16 };
const char* stored_float_name(StoredFloat s);  // "f32", "f16", "bf16"
StoredFloat parse_stored_float(const std::string& name);  // throws larmor::Error on an unknown name

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {},
                      StoredFloat f32_as = StoredFloat::F32);
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace larmor
