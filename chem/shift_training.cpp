// Training/evaluation loop of the shift model (see shift_training.h for why it is built this way).
#include "chem/shift_training.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "chem/shift_pretrain.h"
#include "engine/error.h"
#include "layers/checkpoint.h"
#include "layers/optim.h"
#include "layers/safetensors.h"
#include "layers/schedule.h"

namespace larmor::chem {
namespace {

using json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

[[noreturn]] void train_fail(const std::string& what) { throw Error("train shift: " + what); }

std::string nuclei_list(const std::array<bool, kNumNuclei>& n) {
  std::string s;
  for (int i = 0; i < kNumNuclei; ++i)
    if (n[i]) {
      if (!s.empty()) s.push_back(',');
      s.append(nucleus_name(static_cast<Nucleus>(i)));
    }
  return s;
}

json standardizer_json(const ShiftStandardizer& s) {
  return {{"mean", std::vector<double>(s.mean.begin(), s.mean.end())},
          {"std", std::vector<double>(s.std.begin(), s.std.end())}};
}

ShiftStandardizer standardizer_from_json(const json& j) {
  ShiftStandardizer s;
  for (int i = 0; i < kShiftNuclei; ++i) {
    s.mean[i] = j.at("mean").at(i).get<double>();
    s.std[i] = j.at("std").at(i).get<double>();
  }
  return s;
}

json data_options_json(const ShiftDataOptions& o) {
  return {{"nuclei", nuclei_list(o.nuclei)},
          {"use_assigned", o.use_assigned},
          {"use_unassigned", o.use_unassigned},
          {"use_solvent", o.use_solvent},
          {"split_13c_multiplicity", o.split_13c_multiplicity},
          {"all_peak_sets", o.all_peak_sets}};
}

ShiftDataOptions data_options_from_json(const json& j) {
  ShiftDataOptions o;
  o.nuclei = parse_nuclei(j.at("nuclei").get<std::string>());
  o.use_assigned = j.at("use_assigned").get<bool>();
  o.use_unassigned = j.at("use_unassigned").get<bool>();
  o.use_solvent = j.at("use_solvent").get<bool>();
  o.split_13c_multiplicity = j.at("split_13c_multiplicity").get<bool>();
  o.all_peak_sets = j.at("all_peak_sets").get<bool>();
  return o;
}

// The options that determine the trajectory of a run: a resumed run must agree on all of them.
json run_options_json(const ShiftTrainOptions& o) {
  json j = {{"epochs", o.epochs},
          {"lr", o.lr},
          {"end_lr", o.end_lr},
          {"warmup_fraction", o.warmup_fraction},
          {"weight_decay", o.weight_decay},
          {"clip", o.clip},
          {"batch_labelled", o.batch_labelled},
          {"batch_unlabelled", o.batch_unlabelled},
          {"lambda", o.lambda},
          {"loss", static_cast<int>(o.loss)},
          {"mode", sampler_mode_name(o.mode)},
          {"nuclei", nuclei_list(o.nuclei)},
          {"solvent", o.solvent},
          {"seed", o.seed},
          {"bucket_batches", o.bucket_batches}};
  if (o.steps > 0) j["steps"] = o.steps;  // only when set, so runs from before the option still resume
  return j;
}

ShiftDataOptions data_options_for(const ShiftTrainOptions& o) {
  ShiftDataOptions d;
  d.nuclei = o.nuclei;
  d.use_solvent = o.solvent;
  // labelled-only means no sorted-set supervision at all (also not on the labelled molecules' peak sets)
  if (o.mode == SamplerMode::LabelledOnly) d.use_unassigned = false;
  return d;
}

// Mean over nuclei with targets of MAE / std (lower is better); NaN when nothing was measured.
double selection_score(const std::array<double, kNumNuclei>& mae, const ShiftStandardizer& st) {
  double sum = 0;
  int n = 0;
  for (int i = 0; i < kNumNuclei; ++i)
    if (!std::isnan(mae[i])) {
      sum += mae[i] / st.std[i];
      ++n;
    }
  return n ? sum / n : kNaN;
}

std::string fmt(double v, int prec = 4) {
  if (std::isnan(v)) return "";
  std::ostringstream s;
  s.precision(prec);
  s << std::fixed << v;
  return s.str();
}

// log.csv: one row per step; validation columns filled on the epoch-end rows.
class CsvLog {
 public:
  CsvLog(const std::string& path, const std::array<bool, kNumNuclei>& nuclei, bool resume, int64_t resume_step)
      : nuclei_(nuclei) {
    std::vector<std::string> keep;
    if (resume && std::filesystem::exists(path)) {
      // drop rows written after the checkpoint we resume from (they will be written again)
      std::ifstream in(path);
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        if (keep.empty()) {
          keep.push_back(line);
          continue;
        }
        int64_t step = std::atoll(line.c_str());
        if (step <= resume_step) keep.push_back(line);
      }
    }
    out_.open(path, std::ios::trunc);
    if (!out_) train_fail("cannot write " + path);
    if (keep.empty()) {
      out_ << "step,epoch,lr,loss,grad_norm";
      for (int i = 0; i < kNumNuclei; ++i)
        if (nuclei_[i]) out_ << ",assigned_" << nucleus_name(static_cast<Nucleus>(i));
      for (int i = 0; i < kNumNuclei; ++i)
        if (nuclei_[i]) out_ << ",unassigned_" << nucleus_name(static_cast<Nucleus>(i));
      for (int i = 0; i < kNumNuclei; ++i)
        if (nuclei_[i]) out_ << ",val_mae_" << nucleus_name(static_cast<Nucleus>(i));
      out_ << "\n";
    } else {
      for (const auto& l : keep) out_ << l << "\n";
    }
    out_.flush();
  }
  void step_row(int64_t step, int64_t epoch, double lr, double loss, double norm, const ShiftLossParts& p) {
    out_ << step << "," << epoch << "," << lr << "," << fmt(loss, 6) << "," << fmt(norm, 4);
    for (int i = 0; i < kNumNuclei; ++i)
      if (nuclei_[i]) out_ << "," << (p.assigned_count[i] ? fmt(p.assigned[i], 6) : "");
    for (int i = 0; i < kNumNuclei; ++i)
      if (nuclei_[i]) out_ << "," << (p.unassigned_count[i] ? fmt(p.unassigned[i], 6) : "");
    for (int i = 0; i < kNumNuclei; ++i)
      if (nuclei_[i]) out_ << ",";
    out_ << "\n";
  }
  void val_row(int64_t step, int64_t epoch, const std::array<double, kNumNuclei>& mae) {
    out_ << step << "," << epoch << ",,,";
    for (int i = 0; i < kNumNuclei; ++i)
      if (nuclei_[i]) out_ << ",";
    for (int i = 0; i < kNumNuclei; ++i)
      if (nuclei_[i]) out_ << ",";
    for (int i = 0; i < kNumNuclei; ++i)
      if (nuclei_[i]) out_ << "," << fmt(mae[i], 5);
    out_ << "\n";
    out_.flush();
  }
  void flush() { out_.flush(); }

 private:
  std::array<bool, kNumNuclei> nuclei_;
  std::ofstream out_;
};

const char* carbon_type(const Atom& a) {
  if (a.aromatic) return "aromatic";
  switch (a.num_h) {
    case 3: return "CH3";
    case 2: return "CH2";
    case 1: return "CH";
    default: return "C";
  }
}

json stats_json(const ErrorStats& s) {
  json j = {{"n", s.n}};
  j["mae"] = s.n ? json(s.mae()) : json(nullptr);
  j["rmse"] = s.n ? json(s.rmse()) : json(nullptr);
  return j;
}

}  // namespace

// ---- parsing ----
ShiftModelConfig resolve_shift_config(const std::string& name) {
  if (name == "small") return ShiftModelConfig::small();
  if (name == "large") return ShiftModelConfig::large();
  if (name.size() > 5 && name.substr(name.size() - 5) == ".json") {
    std::ifstream in(name);
    if (!in) throw Error("model config: cannot read '" + name + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    try {
      return ShiftModelConfig::from_json(ss.str());
    } catch (const Error& e) {
      throw Error("model config '" + name + "': " + e.what());
    }
  }
  throw Error("model config: unknown config '" + name + "' (expected small, large or a .json file)");
}

std::array<bool, kNumNuclei> parse_nuclei(const std::string& list) {
  std::array<bool, kNumNuclei> out{};
  std::stringstream ss(list);
  std::string item;
  bool any = false;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    bool found = false;
    for (int i = 0; i < kNumNuclei; ++i)
      if (item == nucleus_name(static_cast<Nucleus>(i))) {
        out[i] = found = any = true;
      }
    if (!found) throw Error("nuclei: unknown nucleus '" + item + "' (expected 1H, 13C, 19F, 31P)");
  }
  if (!any) throw Error("nuclei: empty list");
  return out;
}

SamplerMode parse_sampler_mode(const std::string& name) {
  if (name == "mixed") return SamplerMode::Mixed;
  if (name == "labelled") return SamplerMode::LabelledOnly;
  if (name == "unlabelled") return SamplerMode::UnlabelledOnly;
  if (name == "all") return SamplerMode::All;
  throw Error("mode: unknown mode '" + name + "' (expected mixed, labelled, unlabelled, all)");
}

const char* sampler_mode_name(SamplerMode m) {
  switch (m) {
    case SamplerMode::Mixed: return "mixed";
    case SamplerMode::LabelledOnly: return "labelled";
    case SamplerMode::UnlabelledOnly: return "unlabelled";
    case SamplerMode::All: return "all";
  }
  return "?";
}

double ErrorStats::mae() const { return n ? abs_sum / static_cast<double>(n) : kNaN; }
double ErrorStats::rmse() const { return n ? std::sqrt(sq_sum / static_cast<double>(n)) : kNaN; }

// ---- evaluation ----
ShiftEvalReport evaluate_shift(ShiftModel& model, const ShiftDataset& data, const Dataset& dataset,
                               int64_t batch_size) {
  if (batch_size < 1) throw Error("eval shift: batch size must be >= 1");
  ShiftEvalReport rep;
  rep.molecules = data.size();
  if (data.size() == 0) return rep;
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  const ShiftStandardizer& st = data.standardizer();
  for (const auto& idx : sequential_batches(data, batch_size)) {
    const ShiftBatch b = data.make_batch(idx);
    const ShiftOutput out = model.forward(b);
    const int64_t N = b.seq_len();
    for (int kind = 0; kind < 2; ++kind)
      for (int n = 0; n < kShiftNuclei; ++n) {
        const ShiftTargets& t = kind == 0 ? b.assigned[n] : b.unassigned[n];
        if (t.size() == 0 || !out.has_head[n]) continue;
        const auto pred = gather_shift_predictions(out, t, n).to_vector<float>();
        const auto tgt = t.target.to_vector<float>();
        const auto index = t.index.to_vector<int64_t>();
        const auto off = t.offsets.to_vector<int32_t>();
        for (size_t s = 0; s + 1 < off.size(); ++s) {
          std::vector<double> p, q;
          for (int32_t r = off[s]; r < off[s + 1]; ++r) {
            p.push_back(st.to_ppm(n, pred[r]));
            q.push_back(st.to_ppm(n, tgt[r]));
          }
          std::sort(p.begin(), p.end());
          std::sort(q.begin(), q.end());
          const int64_t row = index[off[s]] / N;
          const DatasetEntry& e = dataset.entries.at(static_cast<size_t>(b.entries[row]));
          for (size_t k = 0; k < p.size(); ++k) {
            const double err = p[k] - q[k];
            if (kind == 1) {
              rep.unassigned[n].add(err);
              continue;
            }
            rep.assigned[n].add(err);
            rep.assigned_pairs[n].emplace_back(q[k], p[k]);
            rep.assigned_by_solvent[solvent_name(e.solvent)][n].add(err);
          }
          if (kind == 0 && n == static_cast<int>(Nucleus::C13) && p.size() == 1) {
            const int64_t atom = index[off[s]] % N - 1;
            rep.carbon_by_type[carbon_type(e.mol.atoms.at(static_cast<size_t>(atom)))].add(p[0] - q[0]);
          }
        }
      }
  }
  model.train(was_training);
  return rep;
}

std::string ShiftEvalReport::table() const {
  std::ostringstream s;
  char line[256];
  s << "split " << split << ": " << molecules << " molecules\n";
  std::snprintf(line, sizeof line, "%-26s %8s %10s %10s\n", "", "n", "MAE (ppm)", "RMSE (ppm)");
  s << line;
  auto row = [&](const std::string& name, const ErrorStats& e) {
    if (e.n == 0) return;
    std::snprintf(line, sizeof line, "%-26s %8lld %10.4f %10.4f\n", name.c_str(), static_cast<long long>(e.n), e.mae(),
                  e.rmse());
    s << line;
  };
  for (int n = 0; n < kNumNuclei; ++n) row(std::string(nucleus_name(static_cast<Nucleus>(n))) + " assigned", assigned[n]);
  for (int n = 0; n < kNumNuclei; ++n)
    row(std::string(nucleus_name(static_cast<Nucleus>(n))) + " unassigned (sorted)", unassigned[n]);
  for (const auto& [solv, arr] : assigned_by_solvent)
    for (int n = 0; n < kNumNuclei; ++n)
      row(std::string(nucleus_name(static_cast<Nucleus>(n))) + " in " + solv, arr[n]);
  for (const char* t : {"CH3", "CH2", "CH", "C", "aromatic"}) {
    auto it = carbon_by_type.find(t);
    if (it != carbon_by_type.end()) row(std::string("13C ") + t, it->second);
  }
  return s.str();
}

std::string ShiftEvalReport::to_json() const {
  json j = {{"split", split}, {"molecules", molecules}};
  json a = json::object(), u = json::object(), sv = json::object(), ct = json::object();
  for (int n = 0; n < kNumNuclei; ++n) {
    const std::string name = nucleus_name(static_cast<Nucleus>(n));
    if (assigned[n].n) a[name] = stats_json(assigned[n]);
    if (unassigned[n].n) u[name] = stats_json(unassigned[n]);
  }
  for (const auto& [solv, arr] : assigned_by_solvent) {
    json o = json::object();
    for (int n = 0; n < kNumNuclei; ++n)
      if (arr[n].n) o[nucleus_name(static_cast<Nucleus>(n))] = stats_json(arr[n]);
    sv[solv] = o;
  }
  for (const auto& [t, e] : carbon_by_type) ct[t] = stats_json(e);
  j["assigned"] = a;
  j["unassigned_sorted_set"] = u;
  j["assigned_by_solvent"] = sv;
  j["carbon_by_type"] = ct;
  return j.dump(2);
}

LoadedShiftModel load_shift_model(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error("load shift model: no such file '" + path + "'");
  LoadedShiftModel m;
  SafetensorsFile f = load_safetensors(path);
  auto get = [&](const char* key) -> const std::string& {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end())
      throw Error("load shift model: '" + path + "' has no '" + key + "' metadata (not a shift-model checkpoint)");
    return it->second;
  };
  const ShiftModelConfig cfg = ShiftModelConfig::from_json(get("model_config"));
  try {
    m.standardizer = standardizer_from_json(json::parse(get("standardizer")));
    m.data_options = data_options_from_json(json::parse(get("data_options")));
  } catch (const json::exception& e) {
    throw Error("load shift model: '" + path + "': bad metadata: " + e.what());
  }
  m.model = std::make_unique<ShiftModel>(cfg, 0);
  m.metadata = load_checkpoint(path, *m.model);
  m.model->eval();
  return m;
}

// ---- training ----
ShiftTrainResult train_shift(const Dataset& dataset, const ShiftTrainOptions& o, const ShiftTrainCallback& cb) {
  auto emit = [&](const ShiftTrainEvent& e) {
    if (cb) cb(e);
  };
  auto message = [&](const std::string& m) {
    ShiftTrainEvent e;
    e.kind = ShiftTrainEvent::Kind::Message;
    e.message = m;
    emit(e);
  };
  if (o.out_dir.empty()) train_fail("no output directory");
  if (o.epochs < 1) train_fail("--epochs must be >= 1");
  if (o.steps < 0) train_fail("--steps must be >= 0");
  if (!(o.lr > 0)) train_fail("--lr must be positive");
  if (o.batch_labelled < 1 || o.batch_unlabelled < 1) train_fail("batch sizes must be >= 1");
  if (o.warmup_fraction < 0 || o.warmup_fraction >= 1) train_fail("warmup fraction must be in [0, 1)");
  if (o.max_steps < 0 || o.checkpoint_every < 0) train_fail("--max-steps and checkpoint interval must be >= 0");

  ShiftModelConfig cfg = o.model_config ? *o.model_config : resolve_shift_config(o.config);
  cfg.nuclei = o.nuclei;
  cfg.solvent_conditioning = o.solvent;
  cfg.validate();

  std::filesystem::create_directories(o.out_dir);
  ShiftTrainResult res;
  res.best_path = (std::filesystem::path(o.out_dir) / "best.safetensors").string();
  res.last_path = (std::filesystem::path(o.out_dir) / "last.safetensors").string();
  res.log_path = (std::filesystem::path(o.out_dir) / "log.csv").string();
  res.last_val_mae.fill(kNaN);

  // resume: read the run position first (the standardiser comes from the checkpoint)
  std::map<std::string, std::string> meta;
  const ShiftDataOptions dopts = data_options_for(o);
  ShiftStandardizer st = fit_standardizer(dataset, Split::Train);
  if (o.resume) {
    if (!std::filesystem::exists(res.last_path)) train_fail("--resume: no checkpoint '" + res.last_path + "'");
    meta = load_safetensors(res.last_path).metadata;
    for (const char* k : {"model_config", "standardizer", "run_options", "epoch", "batch", "step", "dropout_step"})
      if (!meta.count(k)) train_fail("--resume: '" + res.last_path + "' has no '" + k + "' metadata");
    const ShiftModelConfig saved = ShiftModelConfig::from_json(meta["model_config"]);
    if (!(saved == cfg)) train_fail("--resume: the checkpoint's model config differs from the requested one");
    const json want = run_options_json(o), have = json::parse(meta["run_options"]);
    std::string diff;
    for (auto it = want.begin(); it != want.end(); ++it)
      if (!have.contains(it.key()) || have[it.key()] != it.value())
        diff += " " + it.key() + " (checkpoint " + (have.contains(it.key()) ? have[it.key()].dump() : "-") + ", now " +
                it.value().dump() + ")";
    if (!diff.empty()) train_fail("--resume: options differ from the checkpoint's:" + diff);
    st = standardizer_from_json(json::parse(meta["standardizer"]));
  }

  ShiftDataset train(dataset, Split::Train, st, dopts);
  ShiftDataOptions vopts = dopts;
  vopts.use_unassigned = false;
  ShiftDataset valid(dataset, Split::Valid, st, vopts);
  if (train.size() == 0) train_fail("no usable training molecules for nuclei " + nuclei_list(o.nuclei));

  ShiftSamplerOptions so;
  so.mode = o.mode;
  so.labelled_batch = o.batch_labelled;
  so.unlabelled_batch = o.batch_unlabelled;
  so.bucket_batches = o.bucket_batches;
  so.seed = o.seed;
  ShiftSampler sampler(train, so);
  const int64_t bpe = sampler.batches_per_epoch();
  if (bpe == 0)
    train_fail(std::string("no batches in mode ") + sampler_mode_name(o.mode) + " (" + std::to_string(train.stats().labelled) +
               " labelled, " + std::to_string(train.stats().unlabelled) + " unlabelled training molecules)");
  // A step budget (--steps) fixes the schedule length; the epochs are then as many as it takes.
  const int64_t epochs = o.steps > 0 ? (o.steps + bpe - 1) / bpe : o.epochs;
  const int64_t total = o.steps > 0 ? o.steps : bpe * o.epochs;

  ShiftModel model(cfg, o.seed);
  AdamWOptions ao;
  ao.lr = o.lr;
  ao.beta1 = 0.9;
  ao.beta2 = 0.99;
  ao.eps = 1e-6;
  ao.weight_decay = o.weight_decay;
  AdamW opt(model.named_parameters(), ao, shift_model_decay);
  LrSchedule sched;
  sched.kind = LrSchedule::Kind::Polynomial;
  sched.peak_lr = o.lr;
  sched.end_lr = o.end_lr;
  sched.warmup_steps = static_cast<int64_t>(o.warmup_fraction * static_cast<double>(total));
  sched.total_steps = std::max<int64_t>(total, sched.warmup_steps + 1);
  validate(sched);

  ShiftLossOptions lo;
  lo.kind = o.loss;
  lo.unassigned_weight = o.lambda;
  for (int i = 0; i < kNumNuclei; ++i) lo.nucleus_weight[i] = o.nuclei[i] ? 1.0 : 0.0;

  int64_t step = 0, start_epoch = 0, start_batch = 0;
  double best = kNaN;
  if (o.resume) {
    load_checkpoint(res.last_path, model, &opt);
    step = std::stoll(meta["step"]);
    start_epoch = std::stoll(meta["epoch"]);
    start_batch = std::stoll(meta["batch"]);
    model.set_dropout_step(std::stoull(meta["dropout_step"]));
    if (meta.count("best_score") && !meta["best_score"].empty()) best = std::stod(meta["best_score"]);
    message("resuming from " + res.last_path + " at step " + std::to_string(step) + " (epoch " +
            std::to_string(start_epoch + 1) + ", batch " + std::to_string(start_batch) + ")");
  }
  if (!o.init_from.empty() && !o.resume) {
    const std::vector<std::string> fresh = init_from_pretrained(model, o.init_from);
    message("initialised from " + o.init_from + " (" + std::to_string(fresh.size()) + " tensors not in it start fresh)");
  }
  message("training " + std::to_string(train.size()) + " molecules (" + std::to_string(train.stats().labelled) +
          " labelled), validating on " + std::to_string(valid.size()) + "; " + std::to_string(bpe) +
          " batches/epoch, " + std::to_string(total) + " steps, " + std::to_string(model.num_parameters()) +
          " parameters");

  auto save = [&](const std::string& path, int64_t epoch, int64_t batch) {
    std::map<std::string, std::string> md = {
        {"task", "shift"},
        {"model_config", cfg.to_json()},
        {"standardizer", standardizer_json(st).dump()},
        {"data_options", data_options_json(dopts).dump()},
        {"run_options", run_options_json(o).dump()},
        {"epoch", std::to_string(epoch)},
        {"batch", std::to_string(batch)},
        {"step", std::to_string(step)},
        {"dropout_step", std::to_string(model.dropout_step())},
        {"best_score", std::isnan(best) ? "" : fmt(best, 10)},
    };
    if (!o.init_from.empty()) md["init_from"] = o.init_from;
    for (int i = 0; i < kNumNuclei; ++i)
      if (o.nuclei[i] && !std::isnan(res.last_val_mae[i]))
        md[std::string("val_mae_") + nucleus_name(static_cast<Nucleus>(i))] = fmt(res.last_val_mae[i], 6);
    save_checkpoint(path, model, md, &opt);
  };

  CsvLog log(res.log_path, o.nuclei, o.resume, step);
  model.train();
  const auto t0 = std::chrono::steady_clock::now();
  bool first = true, stopped = false;
  for (int64_t epoch = start_epoch; epoch < epochs && !stopped; ++epoch) {
    const auto batches = sampler.epoch(epoch);
    int64_t epoch_mols = 0, done_mols = 0;
    for (const auto& b : batches) epoch_mols += static_cast<int64_t>(b.size());
    int64_t bi = epoch == start_epoch ? start_batch : 0;
    for (int64_t k = 0; k < bi; ++k) done_mols += static_cast<int64_t>(batches[k].size());
    {
      ShiftTrainEvent e;
      e.kind = ShiftTrainEvent::Kind::EpochStart;
      e.epoch = epoch;
      e.step = step;
      e.total_steps = total;
      e.batch = bi;
      e.batches = static_cast<int64_t>(batches.size());
      e.molecules = done_mols;
      e.epoch_molecules = epoch_mols;
      emit(e);
    }
    const auto te = std::chrono::steady_clock::now();
    for (; bi < static_cast<int64_t>(batches.size()); ++bi) {
      if (step >= total) break;  // the step budget ends inside this (last) epoch: validate and finish
      if (o.max_steps > 0 && step >= o.max_steps) {
        stopped = true;
        break;
      }
      const ShiftBatch batch = train.make_batch(batches[bi]);
      const double lr = lr_at(sched, step + 1);
      opt.zero_grad();
      ShiftLossParts parts;
      Tensor loss = shift_loss(model.forward(batch), batch, lo, &parts);
      loss.backward();
      const double norm = clip_grad_norm(model.parameters(), o.clip);
      if (std::isfinite(norm)) opt.step(lr);
      opt.zero_grad();
      ++step;
      const double lv = loss.item();
      if (first) res.first_loss = lv;
      first = false;
      res.last_loss = lv;
      done_mols += static_cast<int64_t>(batches[bi].size());
      log.step_row(step, epoch + 1, lr, lv, norm, parts);
      ShiftTrainEvent e;
      e.kind = ShiftTrainEvent::Kind::Step;
      e.epoch = epoch;
      e.step = step;
      e.total_steps = total;
      e.batch = bi + 1;
      e.batches = static_cast<int64_t>(batches.size());
      e.molecules = done_mols;
      e.epoch_molecules = epoch_mols;
      e.lr = lr;
      e.loss = lv;
      e.grad_norm = norm;
      emit(e);
      if (o.checkpoint_every > 0 && step % o.checkpoint_every == 0) {
        log.flush();
        save(res.last_path, epoch, bi + 1);
      }
    }
    if (stopped) {
      save(res.last_path, epoch, bi);
      break;
    }
    // validation at the end of every epoch
    const double epoch_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - te).count();
    ShiftTrainEvent v;
    v.kind = ShiftTrainEvent::Kind::Validation;
    v.epoch = epoch;
    v.step = step;
    v.total_steps = total;
    v.val_mae.fill(kNaN);
    if (valid.size() > 0) {
      const ShiftEvalReport r = evaluate_shift(model, valid, dataset, o.eval_batch);
      for (int i = 0; i < kNumNuclei; ++i) v.val_mae[i] = o.nuclei[i] ? r.assigned[i].mae() : kNaN;
    }
    res.last_val_mae = v.val_mae;
    const double score = selection_score(v.val_mae, st);
    log.val_row(step, epoch + 1, v.val_mae);
    if (std::isnan(score) || std::isnan(best) || score < best) {
      if (!std::isnan(score)) best = score;
      v.best = true;
    }
    std::ostringstream m;
    m << "epoch " << epoch + 1 << "/" << epochs << " done in " << fmt(epoch_s, 1) << " s";
    for (int i = 0; i < kNumNuclei; ++i)
      if (o.nuclei[i]) m << ", valid MAE " << nucleus_name(static_cast<Nucleus>(i)) << " " << fmt(v.val_mae[i], 4);
    m << (v.best ? " (best)" : "");
    v.message = m.str();
    if (v.best) save(res.best_path, epoch + 1, 0);
    save(res.last_path, epoch + 1, 0);
    res.epochs_done = epoch + 1;
    emit(v);
  }
  res.steps = step;
  res.best_score = best;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace larmor::chem
