// Denoising pretraining loop of the shift model and the backbone copy for fine-tuning (see shift_pretrain.h
// for why it is built this way). The loop itself is chem/train_run.h's, shared with train_shift.
#include "chem/shift_pretrain.h"

#include <algorithm>
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
#include "chem/splitmix.h"
#include "chem/train_run.h"
#include "engine/error.h"
#include "layers/checkpoint.h"
#include "layers/optim.h"
#include "layers/safetensors.h"

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
  std::vector<int32_t> atom_features;  // (num_atoms + 2, kShiftAtomFeatures)
  std::vector<uint8_t> pair_types;     // (num_atoms + 2, num_atoms + 2)
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
    s.atom_features = std::move(f.token_features);
    s.pair_types = std::move(f.token_pairs);
    if (s.tokens.size() != static_cast<size_t>(s.num_atoms + 2) || s.coords.size() != s.tokens.size() * 3)
      pretrain_fail("entry " + std::to_string(e) + " ('" + entry.mol.id + "'): featurize gave " +
                    std::to_string(s.tokens.size()) + " tokens for " + std::to_string(s.num_atoms) + " atoms");
    out.push_back(std::move(s));
  }
  return out;
}

// Padded clean batch of the given samples (the ShiftBatch contract, no shift targets).
ShiftBatch make_batch(const std::vector<Sample>& samples, const std::vector<int64_t>& rows) {
  std::vector<ShiftInputRow> inputs;
  for (int64_t r : rows) {
    const Sample& s = samples[r];
    inputs.push_back({&s.tokens, &s.coords, s.solvent, s.entry, &s.atom_features, &s.pair_types});
  }
  return pad_shift_inputs(inputs);
}

// One epoch's batches, a pure function of (sizes, options, epoch): shuffle, sort by size within chunks of
// bucket_batches batches (little padding), cut, shuffle the batch order.
std::vector<std::vector<int64_t>> epoch_batches(const std::vector<Sample>& samples, int64_t batch, int64_t bucket_batches,
                                                uint64_t seed, int64_t epoch) {
  SplitMix64 rng{seed * 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(epoch) + 0x5851F42D4C957F2Dull)};
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

constexpr const char* kCsvHeader =
    "step,epoch,lr,loss,grad_norm,token,token_acc,coord,distance,pair_norm,selected,"
    "val_loss,val_token,val_token_acc,val_coord,val_distance,val_pair_norm";

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
  auto message = [&](const std::string& m) {
    if (cb) cb(message_event<ShiftPretrainEvent>(m));
  };
  check_train_run_options("train pretrain", o.out_dir, o.epochs, o.lr, o.warmup_fraction, o.max_steps,
                          o.checkpoint_every);
  if (o.batch < 1 || o.eval_batch < 1) pretrain_fail("batch sizes must be >= 1");
  if (o.bucket_batches < 0) pretrain_fail("bucket_batches must be >= 0");

  ShiftModelConfig cfg = o.model_config ? *o.model_config : resolve_shift_config(o.config);
  cfg.nuclei.fill(false);  // no shift heads: fine-tuning starts them fresh
  cfg.solvent_conditioning = o.solvent;
  cfg.validate();
  ShiftNoiseOptions train_noise = o.noise, valid_noise = o.noise;
  train_noise.vocab_size = valid_noise.vocab_size = cfg.vocab_size;
  train_noise.seed = derive_seed(o.seed, kTrainNoiseKey);
  valid_noise.seed = derive_seed(o.seed, kValidNoiseKey);
  train_noise.validate();

  ShiftPretrainResult res;
  const TrainRunPaths paths = prepare_train_run_dir(o.out_dir);
  res.best_val_loss = res.last_val_loss = kNaN;

  const std::string run_options = run_options_json(o).dump();
  std::map<std::string, std::string> meta;
  if (o.resume) meta = read_resume_metadata("train pretrain", paths.last, cfg, run_options);

  int64_t train_no3d = 0, valid_no3d = 0;
  const std::vector<Sample> train = build_samples(dataset, Split::Train, o.solvent, &train_no3d);
  const std::vector<Sample> valid = build_samples(dataset, Split::Valid, o.solvent, &valid_no3d);
  if (train.empty()) pretrain_fail("no training molecules with 3-D coordinates");
  for (const Sample& s : train)
    if (s.solvent >= cfg.num_solvents) pretrain_fail("solvent class " + std::to_string(s.solvent) + " outside the model's " +
                                                     std::to_string(cfg.num_solvents) + " classes");
  const int64_t bpe = (static_cast<int64_t>(train.size()) + o.batch - 1) / o.batch;

  ShiftModel model(cfg, o.seed);
  AdamW opt(model.named_parameters(), shift_adamw_options(o.lr, o.weight_decay), shift_model_decay);
  TrainLoop<ShiftPretrainEvent> loop;
  loop.epochs = o.epochs;
  loop.total_steps = bpe * o.epochs;
  loop.schedule = warmup_linear_schedule(o.lr, o.end_lr, o.warmup_fraction, loop.total_steps);

  // Written into every checkpoint so that load_shift_model and fine-tuning read it like a shift checkpoint.
  const ShiftStandardizer st = fit_standardizer(dataset, Split::Train);
  ShiftDataOptions dopts;
  dopts.use_solvent = o.solvent;

  if (o.resume) {
    loop.start = restore_train_run(paths.last, meta, "best_val_loss", model, opt);
    message(resume_message(paths.last, loop.start));
  }
  message("pretraining on " + std::to_string(train.size()) + " molecules (" + std::to_string(train_no3d) +
          " without 3-D coordinates skipped), validating on " + std::to_string(valid.size()) + "; " +
          std::to_string(bpe) + " batches/epoch, " + std::to_string(loop.total_steps) + " steps, " +
          std::to_string(model.num_parameters()) + " parameters");

  TrainCsvLog log("train pretrain", paths.log, kCsvHeader, o.resume, loop.start.step);
  loop.bind(model, opt, log, paths, o.max_steps, o.checkpoint_every);
  loop.metadata = train_run_metadata("shift_pretrain", cfg, st, dopts, run_options);
  loop.epoch_batches = [&](int64_t epoch) { return epoch_batches(train, o.batch, o.bucket_batches, o.seed, epoch); };
  loop.train_step = [&](const std::vector<int64_t>& rows, int64_t step, int64_t epoch, double lr, ShiftPretrainEvent& e) {
    // the noise of global step `step` (0-based), so a resumed run re-draws it identically
    const ShiftNoised nz = noise_shift_batch(make_batch(train, rows), train_noise, static_cast<uint64_t>(step));
    opt.zero_grad();
    Tensor loss = shift_pretrain_loss(model, model.forward(nz.batch), nz, o.loss, &e.parts);
    const double norm = apply_gradients(loss, model, opt, o.clip, lr);
    e.loss = e.parts.total;
    e.grad_norm = norm;
    const ShiftPretrainLossParts& p = e.parts;
    log.step_row(step + 1, epoch + 1, lr, e.loss, norm)
        << "," << format_fixed(p.token, 6) << "," << format_fixed(p.token_accuracy, 4) << ","
        << format_fixed(p.coord, 6) << "," << format_fixed(p.distance, 6) << "," << format_fixed(p.pair_norm, 6) << ","
        << p.selected << ",,,,,,\n";
  };
  loop.validate = [&](ShiftPretrainEvent& v) {
    v.val_loss = validation_loss(model, valid, o, valid_noise, &v.parts);
    res.last_val_loss = v.val_loss;
    const ShiftPretrainLossParts& p = v.parts;
    log.validation_row(v.step, v.epoch + 1)
        << ",,,,,,," << format_fixed(v.val_loss, 6) << "," << format_fixed(p.token, 6) << ","
        << format_fixed(p.token_accuracy, 4) << "," << format_fixed(p.coord, 6) << "," << format_fixed(p.distance, 6)
        << "," << format_fixed(p.pair_norm, 6) << "\n";
    TrainValidation val;
    val.score = v.val_loss;
    if (!std::isnan(v.val_loss))
      val.summary = ", valid loss " + format_fixed(v.val_loss, 4) + " (token CE " + format_fixed(p.token, 4) +
                    ", accuracy " + format_fixed(p.token_accuracy, 3) + ", coord " + format_fixed(p.coord, 4) +
                    ", distance " + format_fixed(p.distance, 4) + ")";
    return val;
  };
  loop.run_metadata = [&](std::map<std::string, std::string>& md, double best) {
    md["best_val_loss"] = std::isnan(best) ? "" : format_fixed(best, 10);
    md["val_loss"] = std::isnan(res.last_val_loss) ? "" : format_fixed(res.last_val_loss, 10);
  };
  loop.emit = cb;

  const TrainLoopResult r = run_train_loop(loop);
  fill_train_result(res, paths, r);
  res.best_val_loss = r.best;
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
