// The non-template half of the shared training-run machinery (see train_run.h for why it is built this
// way): metadata JSON, option and resume checks, optimizer/schedule settings and log.csv.
#include "chem/train_run.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "chem/shift_training.h"
#include "engine/error.h"
#include "layers/safetensors.h"

namespace larmor::chem {
namespace {
using json = nlohmann::json;
}  // namespace

std::string nuclei_list(const std::array<bool, kNumNuclei>& n) {
  std::string s;
  for (int i = 0; i < kNumNuclei; ++i)
    if (n[i]) {
      if (!s.empty()) s.push_back(',');
      s.append(nucleus_name(static_cast<Nucleus>(i)));
    }
  return s;
}

std::string format_fixed(double v, int precision) {
  if (std::isnan(v)) return "";
  std::ostringstream s;
  s.precision(precision);
  s << std::fixed << v;
  return s.str();
}

std::string standardizer_to_json(const ShiftStandardizer& s) {
  const json j = {{"mean", std::vector<double>(s.mean.begin(), s.mean.end())},
                  {"std", std::vector<double>(s.std.begin(), s.std.end())}};
  return j.dump();
}

ShiftStandardizer standardizer_from_json(const std::string& text) {
  const json j = json::parse(text);
  ShiftStandardizer s;
  for (int i = 0; i < kShiftNuclei; ++i) {
    s.mean[i] = j.at("mean").at(i).get<double>();
    s.std[i] = j.at("std").at(i).get<double>();
  }
  return s;
}

std::string data_options_to_json(const ShiftDataOptions& o) {
  const json j = {{"nuclei", nuclei_list(o.nuclei)},
                  {"use_assigned", o.use_assigned},
                  {"use_unassigned", o.use_unassigned},
                  {"use_solvent", o.use_solvent},
                  {"split_13c_multiplicity", o.split_13c_multiplicity},
                  {"all_peak_sets", o.all_peak_sets}};
  return j.dump();
}

ShiftDataOptions data_options_from_json(const std::string& text) {
  const json j = json::parse(text);
  ShiftDataOptions o;
  o.nuclei = parse_nuclei(j.at("nuclei").get<std::string>());
  o.use_assigned = j.at("use_assigned").get<bool>();
  o.use_unassigned = j.at("use_unassigned").get<bool>();
  o.use_solvent = j.at("use_solvent").get<bool>();
  o.split_13c_multiplicity = j.at("split_13c_multiplicity").get<bool>();
  o.all_peak_sets = j.at("all_peak_sets").get<bool>();
  return o;
}

void check_train_run_options(const std::string& what, const std::string& out_dir, int64_t epochs, double lr,
                             double warmup_fraction, int64_t max_steps, int64_t checkpoint_every) {
  auto fail = [&](const std::string& m) { throw Error(what + ": " + m); };
  if (out_dir.empty()) fail("no output directory");
  if (epochs < 1) fail("--epochs must be >= 1");
  if (!(lr > 0)) fail("--lr must be positive");
  if (warmup_fraction < 0 || warmup_fraction >= 1) fail("warmup fraction must be in [0, 1)");
  if (max_steps < 0 || checkpoint_every < 0) fail("--max-steps and checkpoint interval must be >= 0");
}

TrainRunPaths prepare_train_run_dir(const std::string& out_dir) {
  std::filesystem::create_directories(out_dir);
  const std::filesystem::path dir(out_dir);
  return {(dir / "best.safetensors").string(), (dir / "last.safetensors").string(), (dir / "log.csv").string()};
}

std::map<std::string, std::string> read_resume_metadata(const std::string& what, const std::string& last_path,
                                                        const ShiftModelConfig& config, const std::string& run_options,
                                                        const std::vector<std::string>& extra_keys) {
  return read_resume_metadata(
      what, last_path, [&](const std::string& text) { return ShiftModelConfig::from_json(text) == config; },
      run_options, extra_keys);
}

std::map<std::string, std::string> read_resume_metadata(
    const std::string& what, const std::string& last_path,
    const std::function<bool(const std::string& model_config_json)>& same_model_config, const std::string& run_options,
    const std::vector<std::string>& extra_keys) {
  auto fail = [&](const std::string& m) { throw Error(what + ": --resume: " + m); };
  if (!std::filesystem::exists(last_path)) fail("no checkpoint '" + last_path + "'");
  std::map<std::string, std::string> meta = load_safetensors(last_path).metadata;
  std::vector<std::string> keys = {"model_config", "run_options", "epoch", "batch", "step", "dropout_step"};
  keys.insert(keys.end(), extra_keys.begin(), extra_keys.end());
  for (const std::string& k : keys)
    if (!meta.count(k)) fail("'" + last_path + "' has no '" + k + "' metadata");
  if (!same_model_config(meta["model_config"])) fail("the checkpoint's model config differs from the requested one");
  const json want = json::parse(run_options), have = json::parse(meta["run_options"]);
  std::string diff;
  for (auto it = want.begin(); it != want.end(); ++it)
    if (!have.contains(it.key()) || have[it.key()] != it.value())
      diff += " " + it.key() + " (checkpoint " + (have.contains(it.key()) ? have[it.key()].dump() : "-") + ", now " +
              it.value().dump() + ")";
  if (!diff.empty()) fail("options differ from the checkpoint's:" + diff);
  return meta;
}

TrainRunPosition train_run_position(const std::map<std::string, std::string>& meta, const std::string& best_key) {
  TrainRunPosition p;
  p.step = std::stoll(meta.at("step"));
  p.epoch = std::stoll(meta.at("epoch"));
  p.batch = std::stoll(meta.at("batch"));
  auto it = meta.find(best_key);
  if (it != meta.end() && !it->second.empty()) p.best = std::stod(it->second);
  return p;
}

std::string resume_message(const std::string& last_path, const TrainRunPosition& p) {
  return "resuming from " + last_path + " at step " + std::to_string(p.step) + " (epoch " + std::to_string(p.epoch + 1) +
         ", batch " + std::to_string(p.batch) + ")";
}

std::map<std::string, std::string> train_run_metadata(const std::string& task, const ShiftModelConfig& config,
                                                      const ShiftStandardizer& standardizer,
                                                      const ShiftDataOptions& data_options,
                                                      const std::string& run_options) {
  return {{"task", task},
          {"model_config", config.to_json()},
          {"standardizer", standardizer_to_json(standardizer)},
          {"data_options", data_options_to_json(data_options)},
          {"run_options", run_options}};
}

AdamWOptions shift_adamw_options(double lr, double weight_decay) {
  AdamWOptions ao;
  ao.lr = lr;
  ao.beta1 = 0.9;
  ao.beta2 = 0.99;
  ao.eps = 1e-6;
  ao.weight_decay = weight_decay;
  return ao;
}

LrSchedule warmup_linear_schedule(double peak_lr, double end_lr, double warmup_fraction, int64_t total_steps) {
  LrSchedule s;
  s.kind = LrSchedule::Kind::Polynomial;
  s.peak_lr = peak_lr;
  s.end_lr = end_lr;
  s.warmup_steps = static_cast<int64_t>(warmup_fraction * static_cast<double>(total_steps));
  s.total_steps = std::max<int64_t>(total_steps, s.warmup_steps + 1);
  validate(s);
  return s;
}

double apply_gradients(Tensor& loss, Module& model, AdamW& optimizer, double clip, double lr) {
  loss.backward();
  const double norm = clip_grad_norm(model.parameters(), clip);
  if (std::isfinite(norm)) optimizer.step(lr);
  optimizer.zero_grad();
  return norm;
}

TrainCsvLog::TrainCsvLog(const std::string& what, const std::string& path, const std::string& header, bool resume,
                         int64_t resume_step) {
  std::vector<std::string> keep;
  if (resume && std::filesystem::exists(path)) {  // drop rows after the checkpoint (they are written again)
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      if (keep.empty() || std::atoll(line.c_str()) <= resume_step) keep.push_back(line);
    }
  }
  out_.open(path, std::ios::trunc);
  if (!out_) throw Error(what + ": cannot write " + path);
  if (keep.empty()) out_ << header << "\n";
  for (const auto& l : keep) out_ << l << "\n";
  out_.flush();
}

std::ostream& TrainCsvLog::step_row(int64_t step, int64_t epoch, double lr, double loss, double grad_norm) {
  out_ << step << "," << epoch << "," << lr << "," << format_fixed(loss, 6) << "," << format_fixed(grad_norm, 4);
  return out_;
}

std::ostream& TrainCsvLog::validation_row(int64_t step, int64_t epoch) {
  out_ << step << "," << epoch << ",,,";
  return out_;
}

}  // namespace larmor::chem
