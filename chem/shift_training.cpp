// Training/evaluation loop of the shift model (see shift_training.h for why it is built this way).
#include "chem/shift_training.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "chem/shift_pretrain.h"
#include "chem/train_run.h"
#include "engine/error.h"
#include "layers/checkpoint.h"
#include "layers/optim.h"
#include "layers/safetensors.h"

namespace larmor::chem {
namespace {

using json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

[[noreturn]] void train_fail(const std::string& what) { throw Error("train shift: " + what); }

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

// log.csv columns after "step,epoch,lr,loss,grad_norm": the loss parts per nucleus, then validation MAEs.
std::string csv_header(const std::array<bool, kNumNuclei>& nuclei) {
  std::string h = "step,epoch,lr,loss,grad_norm";
  for (const char* column : {"assigned_", "unassigned_", "val_mae_"})
    for (int i = 0; i < kNumNuclei; ++i)
      if (nuclei[i]) h += std::string(",") + column + nucleus_name(static_cast<Nucleus>(i));
  return h;
}

void csv_step_columns(std::ostream& out, const std::array<bool, kNumNuclei>& nuclei, const ShiftLossParts& p) {
  for (int i = 0; i < kNumNuclei; ++i)
    if (nuclei[i]) out << "," << (p.assigned_count[i] ? format_fixed(p.assigned[i], 6) : "");
  for (int i = 0; i < kNumNuclei; ++i)
    if (nuclei[i]) out << "," << (p.unassigned_count[i] ? format_fixed(p.unassigned[i], 6) : "");
  for (int i = 0; i < kNumNuclei; ++i)
    if (nuclei[i]) out << ",";
  out << "\n";
}

void csv_validation_columns(std::ostream& out, const std::array<bool, kNumNuclei>& nuclei,
                            const std::array<double, kNumNuclei>& mae) {
  for (int i = 0; i < kNumNuclei; ++i)
    if (nuclei[i]) out << ",";
  for (int i = 0; i < kNumNuclei; ++i)
    if (nuclei[i]) out << ",";
  for (int i = 0; i < kNumNuclei; ++i)
    if (nuclei[i]) out << "," << format_fixed(mae[i], 5);
  out << "\n";
}

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
    const ShiftOutput out = model.forward(b, /*with_delta_pair=*/false);
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
    m.standardizer = standardizer_from_json(get("standardizer"));
    m.data_options = data_options_from_json(get("data_options"));
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
  auto message = [&](const std::string& m) {
    if (cb) cb(message_event<ShiftTrainEvent>(m));
  };
  check_train_run_options("train shift", o.out_dir, o.epochs, o.lr, o.warmup_fraction, o.max_steps, o.checkpoint_every);
  if (o.steps < 0) train_fail("--steps must be >= 0");
  if (o.batch_labelled < 1 || o.batch_unlabelled < 1) train_fail("batch sizes must be >= 1");

  ShiftModelConfig cfg = o.model_config ? *o.model_config : resolve_shift_config(o.config);
  cfg.nuclei = o.nuclei;
  cfg.solvent_conditioning = o.solvent;
  cfg.validate();

  ShiftTrainResult res;
  const TrainRunPaths paths = prepare_train_run_dir(o.out_dir);
  res.last_val_mae.fill(kNaN);

  // resume: read the run position first (the standardiser comes from the checkpoint)
  const std::string run_options = run_options_json(o).dump();
  std::map<std::string, std::string> meta;
  const ShiftDataOptions dopts = data_options_for(o);
  ShiftStandardizer st = fit_standardizer(dataset, Split::Train);
  if (o.resume) {
    meta = read_resume_metadata("train shift", paths.last, cfg, run_options, {"standardizer"});
    st = standardizer_from_json(meta["standardizer"]);
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

  ShiftModel model(cfg, o.seed);
  AdamW opt(model.named_parameters(), shift_adamw_options(o.lr, o.weight_decay), shift_model_decay);
  TrainLoop<ShiftTrainEvent> loop;
  // A step budget (--steps) fixes the schedule length; the epochs are then as many as it takes.
  loop.epochs = o.steps > 0 ? (o.steps + bpe - 1) / bpe : o.epochs;
  loop.total_steps = o.steps > 0 ? o.steps : bpe * o.epochs;
  loop.schedule = warmup_linear_schedule(o.lr, o.end_lr, o.warmup_fraction, loop.total_steps);

  ShiftLossOptions lo;
  lo.kind = o.loss;
  lo.unassigned_weight = o.lambda;
  for (int i = 0; i < kNumNuclei; ++i) lo.nucleus_weight[i] = o.nuclei[i] ? 1.0 : 0.0;

  if (o.resume) {
    loop.start = restore_train_run(paths.last, meta, "best_score", model, opt);
    message(resume_message(paths.last, loop.start));
  }
  if (!o.init_from.empty() && !o.resume) {
    const std::vector<std::string> fresh = init_from_pretrained(model, o.init_from);
    message("initialised from " + o.init_from + " (" + std::to_string(fresh.size()) + " tensors not in it start fresh)");
  }
  message("training " + std::to_string(train.size()) + " molecules (" + std::to_string(train.stats().labelled) +
          " labelled), validating on " + std::to_string(valid.size()) + "; " + std::to_string(bpe) +
          " batches/epoch, " + std::to_string(loop.total_steps) + " steps, " + std::to_string(model.num_parameters()) +
          " parameters");

  TrainCsvLog log("train shift", paths.log, csv_header(o.nuclei), o.resume, loop.start.step);
  loop.bind(model, opt, log, paths, o.max_steps, o.checkpoint_every);
  loop.metadata = train_run_metadata("shift", cfg, st, dopts, run_options);
  if (!o.init_from.empty()) loop.metadata["init_from"] = o.init_from;
  loop.epoch_batches = [&](int64_t epoch) { return sampler.epoch(epoch); };
  loop.train_step = [&](const std::vector<int64_t>& rows, int64_t step, int64_t epoch, double lr, ShiftTrainEvent& e) {
    const ShiftBatch batch = train.make_batch(rows);
    opt.zero_grad();
    ShiftLossParts parts;
    Tensor loss = shift_loss(model.forward(batch, /*with_delta_pair=*/false), batch, lo, &parts);
    const double norm = apply_gradients(loss, model, opt, o.clip, lr);
    e.loss = loss.item();
    e.grad_norm = norm;
    csv_step_columns(log.step_row(step + 1, epoch + 1, lr, e.loss, norm), o.nuclei, parts);
  };
  loop.validate = [&](ShiftTrainEvent& v) {
    v.val_mae.fill(kNaN);
    if (valid.size() > 0) {
      const ShiftEvalReport r = evaluate_shift(model, valid, dataset, o.eval_batch);
      for (int i = 0; i < kNumNuclei; ++i) v.val_mae[i] = o.nuclei[i] ? r.assigned[i].mae() : kNaN;
    }
    res.last_val_mae = v.val_mae;
    csv_validation_columns(log.validation_row(v.step, v.epoch + 1), o.nuclei, v.val_mae);
    TrainValidation val;
    val.score = selection_score(v.val_mae, st);
    std::ostringstream m;
    for (int i = 0; i < kNumNuclei; ++i)
      if (o.nuclei[i])
        m << ", valid MAE " << nucleus_name(static_cast<Nucleus>(i)) << " " << format_fixed(v.val_mae[i], 4);
    val.summary = m.str();
    return val;
  };
  loop.run_metadata = [&](std::map<std::string, std::string>& md, double best) {
    md["best_score"] = std::isnan(best) ? "" : format_fixed(best, 10);
    for (int i = 0; i < kNumNuclei; ++i)
      if (o.nuclei[i] && !std::isnan(res.last_val_mae[i]))
        md[std::string("val_mae_") + nucleus_name(static_cast<Nucleus>(i))] = format_fixed(res.last_val_mae[i], 6);
  };
  loop.emit = cb;

  const TrainLoopResult r = run_train_loop(loop);
  fill_train_result(res, paths, r);
  res.best_score = r.best;
  return res;
}

}  // namespace larmor::chem
