#include "layers/checkpoint.h"

#include "layers/safetensors.h"

namespace larmor {

namespace {
constexpr const char* kOptimPrefix = "optim.";
bool is_optim_key(const std::string& k) { return k.rfind(kOptimPrefix, 0) == 0; }
}  // namespace

void save_checkpoint(const std::string& path, const Module& module, const std::map<std::string, std::string>& metadata,
                     const AdamW* optimizer) {
  std::map<std::string, Tensor> tensors = module.state_dict();
  for (const auto& [name, t] : tensors)
    if (is_optim_key(name)) throw Error("save_checkpoint: '" + path + "': module tensor '" + name + "' uses the reserved prefix 'optim.'");
  if (optimizer)
    for (auto& [name, t] : optimizer->state_tensors()) tensors.emplace(name, t);
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "larmor-checkpoint-1";
  save_safetensors(path, tensors, meta);
}

std::map<std::string, std::string> load_checkpoint(const std::string& path, Module& module, AdamW* optimizer) {
  SafetensorsFile f = load_safetensors(path);
  std::map<std::string, Tensor> mine = module.state_dict();
  std::string missing, unexpected, mismatched;
  for (const auto& [name, t] : mine) {
    auto it = f.tensors.find(name);
    if (it == f.tensors.end()) {
      missing += "\n  " + name;
    } else if (it->second.shape() != t.shape() || it->second.dtype() != t.dtype()) {
      mismatched += "\n  " + name + ": file " + dtype_name(it->second.dtype()) + shape_str(it->second.shape()) +
                    ", model " + dtype_name(t.dtype()) + shape_str(t.shape());
    }
  }
  for (const auto& [name, t] : f.tensors)
    if (!is_optim_key(name) && !mine.count(name)) unexpected += "\n  " + name;
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string msg = "load_checkpoint: '" + path + "': checkpoint does not match the model";
    if (!missing.empty()) msg += "\nmissing from the file:" + missing;
    if (!unexpected.empty()) msg += "\nunexpected in the file:" + unexpected;
    if (!mismatched.empty()) msg += "\nshape/dtype mismatch:" + mismatched;
    throw Error(msg);
  }
  if (optimizer) {
    std::map<std::string, Tensor> state;
    for (const auto& [name, t] : f.tensors)
      if (is_optim_key(name)) state.emplace(name, t);
    try {
      optimizer->load_state_tensors(state);
    } catch (const Error& e) {
      throw Error("load_checkpoint: '" + path + "': " + e.what());
    }
  }
  // Everything checked: now write (no partial loads on error).
  for (auto& [name, t] : mine) {
    Tensor dst = t;
    dst.copy_(f.tensors.at(name));
  }
  return f.metadata;
}

size_t export_checkpoint(const std::string& in, const std::string& out, StoredFloat f32_as,
                         const std::map<std::string, std::string>& extra_metadata) {
  SafetensorsFile f = load_safetensors(in);
  if (f.metadata.count("format") == 0 || f.metadata.at("format") != "larmor-checkpoint-1")
    throw Error("export_checkpoint: '" + in + "' is not a larmor checkpoint (no format metadata)");
  std::map<std::string, Tensor> weights;
  for (auto& [name, t] : f.tensors)
    if (!is_optim_key(name)) weights.emplace(name, t);
  std::map<std::string, std::string> meta = f.metadata;
  for (const auto& [k, v] : extra_metadata) meta[k] = v;
  meta["stored_float"] = stored_float_name(f32_as);
  save_safetensors(out, weights, meta, f32_as);
  return weights.size();
}

}  // namespace larmor
