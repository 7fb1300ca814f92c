// Denoising pretraining loop of the shift model and the backbone copy for fine-tuning (see shift_pretrain.h
// for why it is built this way). The structure mirrors train_shift in shift_training.cpp.
#include "chem/shift_pretrain.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "chem/features.h"
#include "chem/shift_data.h"
#include "chem/shift_training.h"
#include "engine/error.h"
#include "layers/checkpoint.h"
#include "layers/optim.h"
#include "layers/safetensors.h"
#include "layers/schedule.h"

namespace larmor::chem {
namespace {

using json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr uint64_t kTrainNoiseKey = 0x7072657472ull, kValidNoiseKey = 0x76616c6964ull;  // derive_seed keys

[[noreturn]] void pretrain_fail(const std::string& what) { throw Error("train pretrain: " + what); }

// One train/valid molecule: Uni-Mol tokens and centred coordinates, [CLS] atoms [SEP].
struct Sample {
  int64_t entry = -1;
  int32_t num_atoms = 0;
  int32_t solvent = 0;
  std::vector<int32_t> tokens;  // (num_atoms + 2)
  std::vector<float> coords;    // (num_atoms + 2, 3)
};

std::vector<Sample> build_samples(const Dataset& ds, Split split, bool solvent, int64_t* without_3d) {
  std::vector<Sample> out;
  *without_3d = 0;
  for (size_t e = 0; e < ds.entries.size(); ++e) {
    const DatasetEntry& entry = ds.entries[e];
    if (entry.split != split) continue;
    if (!entry.mol.has_3d() || entry.mol.num_atoms() == 0) {
      ++*without_3d;
      continue;
    }
    MoleculeFeatures f = featurize(entry.mol, FeatureOptions{false});
    Sample s;
    s.entry = static_cast<int64_t>(e);
    s.num_atoms = entry.mol.num_atoms();
    s.solvent = solvent ? static_cast<int32_t>(entry.solvent) : 0;
    s.tokens = std::move(f.tokens);
    s.coords = std::move(f.coords);
    if (s.tokens.size() != static_cast<size_t>(s.num_atoms + 2) || s.coords.size() != s.tokens.size() * 3)
      pretrain_fail("entry " + std::to_string(e) + " ('" + entry.mol.id + "'): featurize gave " +
                    std::to_string(s.tokens.size()) + " tokens for " + std::to_string(s.num_atoms) + " atoms");
    out.push_back(std::move(s));
  }
  return out;
}

// Padded clean batch of the given samples (the ShiftBatch contract, no shift targets).
ShiftBatch make_batch(const std::vector<Sample>& samples, const std::vector<int64_t>& rows) {
  int64_t max_atoms = 0;
  for (int64_t r : rows) max_atoms = std::max<int64_t>(max_atoms, samples[r].num_atoms);
  const int64_t B = static_cast<int64_t>(rows.size()), N = max_atoms + 2;
  std::vector<int32_t> tokens(B * N, 0), key_mask(B * N, 0), solvent(B, 0);  // (B, N), (B, N), (B)
  std::vector<float> coords(B * N * 3, 0.0f);                                  // (B, N, 3)
  ShiftBatch batch;
  for (int64_t b = 0; b < B; ++b) {
    const Sample& s = samples[rows[b]];
    std::copy(s.tokens.begin(), s.tokens.end(), tokens.begin() + b * N);
    std::fill(key_mask.begin() + b * N, key_mask.begin() + b * N + s.num_atoms + 2, 1);
    std::copy(s.coords.begin(), s.coords.end(), coords.begin() + b * N * 3);
    solvent[b] = s.solvent;
    batch.entries.push_back(s.entry);
  }
  batch.tokens = Tensor::from_vector(tokens, {B, N});
  batch.coords = Tensor::from_vector(coords, {B, N, 3});
  batch.key_mask = Tensor::from_vector(key_mask, {B, N});
  batch.solvent = Tensor::from_vector(solvent, {B});
  return batch;
}

// SplitMix64: the same stream on every platform (std::shuffle's algorithm is library-defined).
struct SplitMix {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) {  // uniform in [0, n) by rejection
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = next();
    while (r >= limit);
    return r % n;
  }
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }
};

// One epoch's batches, a pure function of (sizes, options, epoch): shuffle, sort by size within chunks of
// bucket_batches batches (little padding), cut, shuffle the batch order.
std::vector<std::vector<int64_t>> epoch_batches(const std::vector<Sample>& samples, int64_t batch, int64_t bucket_batches,
                                                uint64_t seed, int64_t epoch) {
  SplitMix rng{seed * 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(epoch) + 0x5851F42D4C957F2Dull)};
  rng.next();
  const int64_t n = static_cast<int64_t>(samples.size());
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  rng.shuffle(order);
  if (bucket_batches > 0)
    for (int64_t c = 0; c < n; c += bucket_batches * batch)
      std::stable_sort(order.begin() + c, order.begin() + std::min(n, c + bucket_batches * batch),
                       [&](int64_t a, int64_t b) { return samples[a].num_atoms < samples[b].num_atoms; });
  std::vector<std::vector<int64_t>> out;
  for (int64_t c = 0; c < n; c += batch) out.emplace_back(order.begin() + c, order.begin() + std::min(n, c + batch));
  rng.shuffle(out);
  return out;
}

// The same JSON as shift_training.cpp writes for "standardizer" and "data_options", so load_shift_model
// reads a pretraining checkpoint.
json standardizer_json(const ShiftStandardizer& s) {
  return {{"mean", std::vector<double>(s.mean.begin(), s.mean.end())},
          {"std", std::vector<double>(s.std.begin(), s.std.end())}};
}

json data_options_json(const ShiftDataOptions& o) {
  std::string nuclei;
  for (int i = 0; i < kNumNuclei; ++i)
    if (o.nuclei[i]) nuclei += std::string(nuclei.empty() ? "" : ",") + nucleus_name(static_cast<Nucleus>(i));
  return {{"nuclei", nuclei},
          {"use_assigned", o.use_assigned},
          {"use_unassigned", o.use_unassigned},
          {"use_solvent", o.use_solvent},
          {"split_13c_multiplicity", o.split_13c_multiplicity},
          {"all_peak_sets", o.all_peak_sets}};
}

// The options that determine the trajectory of a run: a resumed run must agree on all of them.
json run_options_json(const ShiftPretrainOptions& o) {
  return {{"epochs", o.epochs},
          {"lr", o.lr},
          {"end_lr", o.end_lr},
          {"warmup_fraction", o.warmup_fraction},
          {"weight_decay", o.weight_decay},
          {"clip", o.clip},
          {"batch", o.batch},
          {"mask_prob", o.noise.mask_prob},
          {"leave_unmasked", o.noise.leave_unmasked},
          {"random_token", o.noise.random_token},
          {"coord_noise", o.noise.coord_noise},
          {"token_weight", o.loss.token_weight},
          {"coord_weight", o.loss.coord_weight},
          {"distance_weight", o.loss.distance_weight},
          {"pair_norm_weight", o.loss.pair_norm_weight},
          {"solvent", o.solvent},
          {"seed", o.seed},
          {"bucket_batches", o.bucket_batches}};
}

std::string fmt(double v, int prec = 6) {
  if (std::isnan(v)) return "";
  std::ostringstream s;
  s.precision(prec);
  s << std::fixed << v;
  return s.str();
}

// log.csv: one row per step; the val_ columns filled on the epoch-end rows.
class CsvLog {
 public:
  CsvLog(const std::string& path, bool resume, int64_t resume_step) {
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
    if (!out_) pretrain_fail("cannot write " + path);
    if (keep.empty())
      out_ << "step,epoch,lr,loss,grad_norm,token,token_acc,coord,distance,pair_norm,selected,"
              "val_loss,val_token,val_token_acc,val_coord,val_distance,val_pair_norm\n";
    for (const auto& l : keep) out_ << l << "\n";
    out_.flush();
  }
  void step_row(int64_t step, int64_t epoch, double lr, double loss, double norm, const ShiftPretrainLossParts& p) {
    out_ << step << "," << epoch << "," << lr << "," << fmt(loss) << "," << fmt(norm, 4) << "," << fmt(p.token) << ","
         << fmt(p.token_accuracy, 4) << "," << fmt(p.coord) << "," << fmt(p.distance) << "," << fmt(p.pair_norm) << ","
         << p.selected << ",,,,,,\n";
  }
  void val_row(int64_t step, int64_t epoch, double loss, const ShiftPretrainLossParts& p) {
    out_ << step << "," << epoch << ",,,,,,,,,," << fmt(loss) << "," << fmt(p.token) << "," << fmt(p.token_accuracy, 4)
         << "," << fmt(p.coord) << "," << fmt(p.distance) << "," << fmt(p.pair_norm) << "\n";
    out_.flush();
  }
  void flush() { out_.flush(); }

 private:
  std::ofstream out_;
};

// The pretraining loss on the valid split: eval mode, no gradients, noise fixed by (valid seed, batch
// number). Parts are means weighted by selected atoms (pair norm: by molecules); NaN loss when empty.
double validation_loss(ShiftModel& model, const std::vector<Sample>& valid, const ShiftPretrainOptions& o,
                       const ShiftNoiseOptions& noise, ShiftPretrainLossParts* parts) {
  *parts = ShiftPretrainLossParts{};
  if (valid.empty()) return kNaN;
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  std::vector<int64_t> order(valid.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return valid[a].num_atoms < valid[b].num_atoms; });
  double selected = 0, molecules = 0;
  ShiftPretrainLossParts acc;
  for (size_t c = 0, k = 0; c < order.size(); c += static_cast<size_t>(o.eval_batch), ++k) {
    const size_t end = std::min(order.size(), c + static_cast<size_t>(o.eval_batch));
    const std::vector<int64_t> rows(order.begin() + static_cast<std::ptrdiff_t>(c), order.begin() + static_cast<std::ptrdiff_t>(end));
    const ShiftNoised nz = noise_shift_batch(make_batch(valid, rows), noise, k);
    ShiftPretrainLossParts p;
    shift_pretrain_loss(model, model.forward(nz.batch), nz, o.loss, &p);
    const double m = static_cast<double>(p.selected), b = static_cast<double>(rows.size());
    acc.token += m * p.token;
    acc.token_accuracy += m * p.token_accuracy;
    acc.coord += m * p.coord;
    acc.distance += m * p.distance;
    acc.pair_norm += b * p.pair_norm;
    acc.selected += p.selected;
    selected += m;
    molecules += b;
  }
  model.train(was_training);
  if (selected > 0) {
    acc.token /= selected;
    acc.token_accuracy /= selected;
    acc.coord /= selected;
    acc.distance /= selected;
  }
  acc.pair_norm /= molecules;
  acc.total = o.loss.token_weight * acc.token + o.loss.coord_weight * acc.coord + o.loss.distance_weight * acc.distance +
              o.loss.pair_norm_weight * acc.pair_norm;
  *parts = acc;
  return acc.total;
}

}  // namespace

ShiftPretrainResult pretrain_shift(const Dataset& dataset, const ShiftPretrainOptions& o, const ShiftPretrainCallback& cb) {
  auto emit = [&](const ShiftPretrainEvent& e) {
    if (cb) cb(e);
  };
  auto message = [&](const std::string& m) {
    ShiftPretrainEvent e;
    e.kind = ShiftPretrainEvent::Kind::Message;
    e.message = m;
    emit(e);
  };
  if (o.out_dir.empty()) pretrain_fail("no output directory");
  if (o.epochs < 1) pretrain_fail("--epochs must be >= 1");
  if (!(o.lr > 0)) pretrain_fail("--lr must be positive");
  if (o.batch < 1 || o.eval_batch < 1) pretrain_fail("batch sizes must be >= 1");
  if (o.bucket_batches < 0) pretrain_fail("bucket_batches must be >= 0");
  if (o.warmup_fraction < 0 || o.warmup_fraction >= 1) pretrain_fail("warmup fraction must be in [0, 1)");
  if (o.max_steps < 0 || o.checkpoint_every < 0) pretrain_fail("--max-steps and checkpoint interval must be >= 0");

  ShiftModelConfig cfg = o.model_config ? *o.model_config : resolve_shift_config(o.config);
  cfg.nuclei.fill(false);  // no shift heads: fine-tuning starts them fresh
  cfg.solvent_conditioning = o.solvent;
  cfg.validate();
  ShiftNoiseOptions train_noise = o.noise, valid_noise = o.noise;
  train_noise.vocab_size = valid_noise.vocab_size = cfg.vocab_size;
  train_noise.seed = derive_seed(o.seed, kTrainNoiseKey);
  valid_noise.seed = derive_seed(o.seed, kValidNoiseKey);
  train_noise.validate();

  std::filesystem::create_directories(o.out_dir);
  ShiftPretrainResult res;
  res.best_path = (std::filesystem::path(o.out_dir) / "best.safetensors").string();
  res.last_path = (std::filesystem::path(o.out_dir) / "last.safetensors").string();
  res.log_path = (std::filesystem::path(o.out_dir) / "log.csv").string();
  res.best_val_loss = res.last_val_loss = kNaN;

  std::map<std::string, std::string> meta;
  if (o.resume) {
    if (!std::filesystem::exists(res.last_path)) pretrain_fail("--resume: no checkpoint '" + res.last_path + "'");
    meta = load_safetensors(res.last_path).metadata;
    for (const char* k : {"model_config", "run_options", "epoch", "batch", "step", "dropout_step"})
      if (!meta.count(k)) pretrain_fail("--resume: '" + res.last_path + "' has no '" + k + "' metadata");
    if (!(ShiftModelConfig::from_json(meta["model_config"]) == cfg))
      pretrain_fail("--resume: the checkpoint's model config differs from the requested one");
    const json want = run_options_json(o), have = json::parse(meta["run_options"]);
    std::string diff;
    for (auto it = want.begin(); it != want.end(); ++it)
      if (!have.contains(it.key()) || have[it.key()] != it.value())
        diff += " " + it.key() + " (checkpoint " + (have.contains(it.key()) ? have[it.key()].dump() : "-") + ", now " +
                it.value().dump() + ")";
    if (!diff.empty()) pretrain_fail("--resume: options differ from the checkpoint's:" + diff);
  }

  int64_t train_no3d = 0, valid_no3d = 0;
  const std::vector<Sample> train = build_samples(dataset, Split::Train, o.solvent, &train_no3d);
  const std::vector<Sample> valid = build_samples(dataset, Split::Valid, o.solvent, &valid_no3d);
  if (train.empty()) pretrain_fail("no training molecules with 3-D coordinates");
  for (const Sample& s : train)
    if (s.solvent >= cfg.num_solvents) pretrain_fail("solvent class " + std::to_string(s.solvent) + " outside the model's " +
                                                     std::to_string(cfg.num_solvents) + " classes");
  const int64_t bpe = (static_cast<int64_t>(train.size()) + o.batch - 1) / o.batch;
  const int64_t total = bpe * o.epochs;

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

  // Written into every checkpoint so that load_shift_model and fine-tuning read it like a shift checkpoint.
  const ShiftStandardizer st = fit_standardizer(dataset, Split::Train);
  ShiftDataOptions dopts;
  dopts.use_solvent = o.solvent;

  int64_t step = 0, start_epoch = 0, start_batch = 0;
  double best = kNaN;
  if (o.resume) {
    load_checkpoint(res.last_path, model, &opt);
    step = std::stoll(meta["step"]);
    start_epoch = std::stoll(meta["epoch"]);
    start_batch = std::stoll(meta["batch"]);
    model.set_dropout_step(std::stoull(meta["dropout_step"]));
    if (meta.count("best_val_loss") && !meta["best_val_loss"].empty()) best = std::stod(meta["best_val_loss"]);
    message("resuming from " + res.last_path + " at step " + std::to_string(step) + " (epoch " +
            std::to_string(start_epoch + 1) + ", batch " + std::to_string(start_batch) + ")");
  }
  message("pretraining on " + std::to_string(train.size()) + " molecules (" + std::to_string(train_no3d) +
          " without 3-D coordinates skipped), validating on " + std::to_string(valid.size()) + "; " +
          std::to_string(bpe) + " batches/epoch, " + std::to_string(total) + " steps, " +
          std::to_string(model.num_parameters()) + " parameters");

  auto save = [&](const std::string& path, int64_t epoch, int64_t batch) {
    const std::map<std::string, std::string> md = {
        {"task", "shift_pretrain"},
        {"model_config", cfg.to_json()},
        {"standardizer", standardizer_json(st).dump()},
        {"data_options", data_options_json(dopts).dump()},
        {"run_options", run_options_json(o).dump()},
        {"epoch", std::to_string(epoch)},
        {"batch", std::to_string(batch)},
        {"step", std::to_string(step)},
        {"dropout_step", std::to_string(model.dropout_step())},
        {"best_val_loss", std::isnan(best) ? "" : fmt(best, 10)},
        {"val_loss", std::isnan(res.last_val_loss) ? "" : fmt(res.last_val_loss, 10)},
    };
    save_checkpoint(path, model, md, &opt);
  };

  CsvLog log(res.log_path, o.resume, step);
  model.train();
  const auto t0 = std::chrono::steady_clock::now();
  bool first = true, stopped = false;
  for (int64_t epoch = start_epoch; epoch < o.epochs && !stopped; ++epoch) {
    const auto batches = epoch_batches(train, o.batch, o.bucket_batches, o.seed, epoch);
    int64_t epoch_mols = static_cast<int64_t>(train.size()), done_mols = 0;
    int64_t bi = epoch == start_epoch ? start_batch : 0;
    for (int64_t k = 0; k < bi; ++k) done_mols += static_cast<int64_t>(batches[k].size());
    {
      ShiftPretrainEvent e;
      e.kind = ShiftPretrainEvent::Kind::EpochStart;
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
      if (o.max_steps > 0 && step >= o.max_steps) {
        stopped = true;
        break;
      }
      // the noise of global step `step` (0-based), so a resumed run re-draws it identically
      const ShiftNoised nz = noise_shift_batch(make_batch(train, batches[bi]), train_noise, static_cast<uint64_t>(step));
      const double lr = lr_at(sched, step + 1);
      opt.zero_grad();
      ShiftPretrainLossParts parts;
      Tensor loss = shift_pretrain_loss(model, model.forward(nz.batch), nz, o.loss, &parts);
      loss.backward();
      const double norm = clip_grad_norm(model.parameters(), o.clip);
      if (std::isfinite(norm)) opt.step(lr);
      opt.zero_grad();
      ++step;
      const double lv = parts.total;
      if (first) res.first_loss = lv;
      first = false;
      res.last_loss = lv;
      done_mols += static_cast<int64_t>(batches[bi].size());
      log.step_row(step, epoch + 1, lr, lv, norm, parts);
      ShiftPretrainEvent e;
      e.kind = ShiftPretrainEvent::Kind::Step;
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
      e.parts = parts;
      emit(e);
      if (o.checkpoint_every > 0 && step % o.checkpoint_every == 0) {
        log.flush();
        save(res.last_path, epoch, bi + 1);
      }
    }
    if (stopped) {
      log.flush();
      save(res.last_path, epoch, bi);
      break;
    }
    // validation at the end of every epoch
    const double epoch_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - te).count();
    ShiftPretrainEvent v;
    v.kind = ShiftPretrainEvent::Kind::Validation;
    v.epoch = epoch;
    v.step = step;
    v.total_steps = total;
    v.val_loss = validation_loss(model, valid, o, valid_noise, &v.parts);
    res.last_val_loss = v.val_loss;
    log.val_row(step, epoch + 1, v.val_loss, v.parts);
    if (std::isnan(v.val_loss) || std::isnan(best) || v.val_loss < best) {
      if (!std::isnan(v.val_loss)) best = v.val_loss;
      v.best = true;
    }
    std::ostringstream m;
    m << "epoch " << epoch + 1 << "/" << o.epochs << " done in " << fmt(epoch_s, 1) << " s";
    if (!std::isnan(v.val_loss))
      m << ", valid loss " << fmt(v.val_loss, 4) << " (token CE " << fmt(v.parts.token, 4) << ", accuracy "
        << fmt(v.parts.token_accuracy, 3) << ", coord " << fmt(v.parts.coord, 4) << ", distance "
        << fmt(v.parts.distance, 4) << ")";
    m << (v.best ? " (best)" : "");
    v.message = m.str();
    if (v.best) save(res.best_path, epoch + 1, 0);
    save(res.last_path, epoch + 1, 0);
    res.epochs_done = epoch + 1;
    emit(v);
  }
  res.steps = step;
  res.best_val_loss = best;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

std::vector<std::string> init_from_pretrained(ShiftModel& model, const std::string& path) {
  const std::string what = "init from '" + path + "'";
  if (!std::filesystem::exists(path)) throw Error(what + ": no such file");
  SafetensorsFile f = load_safetensors(path);
  auto it = f.metadata.find("model_config");
  if (it == f.metadata.end()) throw Error(what + ": no 'model_config' metadata (not a shift-model checkpoint)");
  ShiftModelConfig saved;
  try {
    saved = ShiftModelConfig::from_json(it->second);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
  const ShiftModelConfig& mine = model.config();
  std::string diff;
  auto compare = [&](const char* name, int64_t file, int64_t want) {
    if (file != want) diff += std::string(" ") + name + " (file " + std::to_string(file) + ", model " + std::to_string(want) + ")";
  };
  compare("layers", saved.layers, mine.layers);
  compare("dim", saved.dim, mine.dim);
  compare("heads", saved.heads, mine.heads);
  compare("ffn", saved.ffn, mine.ffn);
  compare("kernels", saved.kernels, mine.kernels);
  compare("vocab_size", saved.vocab_size, mine.vocab_size);
  if (!diff.empty()) throw Error(what + ": the pretrained model config differs from the requested one:" + diff);

  std::map<std::string, Tensor> state = model.state_dict();
  std::vector<std::string> fresh;
  std::string mismatched;
  for (const auto& [name, t] : state) {
    auto ft = f.tensors.find(name);
    if (ft == f.tensors.end()) fresh.push_back(name);
    else if (ft->second.shape() != t.shape())
      mismatched += "\n  " + name + ": file " + shape_str(ft->second.shape()) + ", model " + shape_str(t.shape());
  }
  if (!mismatched.empty()) throw Error(what + ": tensors of another shape:" + mismatched);
  for (auto& [name, t] : state) {  // everything checked: now write
    auto ft = f.tensors.find(name);
    if (ft == f.tensors.end()) continue;
    Tensor dst = t;
    dst.copy_(ft->second.dtype() == t.dtype() ? ft->second : ft->second.to(t.dtype()));
  }
  return fresh;
}

}  // namespace larmor::chem
