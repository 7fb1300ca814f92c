// Checkpoint files in the safetensors format (https://github.com/huggingface/safetensors), so a larmor
// checkpoint opens in Python with `safetensors.torch.load_file` and vice versa:
//   8 bytes   little-endian u64 N (header length)
//   N bytes   JSON {"<name>": {"dtype": "F32"|"F64"|"I32"|"I64", "shape": [...], "data_offsets": [b, e]},
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

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace larmor
