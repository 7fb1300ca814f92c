// bench_shift_compare: larmor's half of bench/compare.sh, the side-by-side comparison with the PyTorch
// reference of the shift model (bench/reference/shift_reference.py).
//
//   bench_shift_compare export --data D.safetensors --model M.safetensors --out DIR
//                              [--split test] [--batch-sizes 16,64,256] [--seed 1] [--lambda 1]
//     Draws B molecules of the split (a seeded shuffle of its usable samples) for each B and writes
//     DIR/shift_batch_<B>.safetensors: the batch exactly as the model sees it (tokens, coords, key_mask,
//     solvent, the assigned / unassigned target segments per nucleus) and, for the parity check, our
//     eval-mode outputs: `out.shifts` (B, N, 4) and `out.loss` (the training loss: L1 sorted-set terms,
//     weight lambda on the unassigned ones, in standardised units).
//   bench_shift_compare time --model M --batch FILE [--mode infer|train] [--threads T] [--repeats R]
//                            [--device cpu|cuda]
//     Times one call on that batch after two warm-up calls and prints one JSON line (median / min ms,
//     molecules/s). infer: eval mode, no autograd tape, shifts only. train: one full training step
//     (zero_grad, forward in training mode, loss, backward, gradient clipping at 1, AdamW).
//
// Why a separate program and not a Google Benchmark case: the batches are real molecules from a prepared
// dataset, fixed once and read by both engines, so the two timings and the loss check are on identical
// inputs; the Google Benchmark cases (bench_shift_step) use synthetic batches and need no data.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "chem/dataset.h"
#include "chem/shift_data.h"
#include "chem/shift_training.h"
#include "chem/splitmix.h"
#include "bench/compare_util.h"
#include "engine/error.h"
#include "engine/thread_pool.h"
#include "layers/optim.h"
#include "layers/safetensors.h"
#include "layers/shift_loss.h"

namespace larmor {
namespace {

const char* const kNuc[kShiftNuclei] = {"1H", "13C", "19F", "31P"};

using bench::Args;
using bench::parse_sizes;

// The training loss of the shipped model: L1 sorted-set terms, weight lambda on the unassigned ones.
ShiftLossOptions loss_options(double lambda) {
  ShiftLossOptions o;
  o.kind = SetLossKind::L1;
  o.unassigned_weight = lambda;
  return o;
}

// ---- the batch file -------------------------------------------------------------------------------------
std::map<std::string, Tensor> batch_tensors(const ShiftBatch& b) {
  std::map<std::string, Tensor> t = {
      {"tokens", b.tokens}, {"coords", b.coords}, {"key_mask", b.key_mask}, {"solvent", b.solvent}};
  if (b.atom_features.defined()) t["atom_features"] = b.atom_features;
  if (b.pair_types.defined()) t["pair_types"] = b.pair_types;
  auto put = [&](const std::string& kind, const ShiftTargets& s, int n) {
    if (s.size() == 0) return;
    std::string base = kind + "." + kNuc[n] + ".";
    t[base + "index"] = s.index;
    t[base + "target"] = s.target;
    t[base + "offsets"] = s.offsets;
  };
  for (int n = 0; n < kShiftNuclei; ++n) {
    put("assigned", b.assigned[n], n);
    put("unassigned", b.unassigned[n], n);
  }
  return t;
}

ShiftBatch read_batch(const SafetensorsFile& f, const std::string& path) {
  auto get = [&](const std::string& k) {
    auto it = f.tensors.find(k);
    if (it == f.tensors.end()) throw Error(path + ": no tensor '" + k + "' (not a bench_shift_compare batch file?)");
    return it->second;
  };
  ShiftBatch b;
  b.tokens = get("tokens");
  b.coords = get("coords");
  b.key_mask = get("key_mask");
  b.solvent = get("solvent");
  if (f.tensors.count("atom_features")) b.atom_features = get("atom_features");
  if (f.tensors.count("pair_types")) b.pair_types = get("pair_types");
  for (int n = 0; n < kShiftNuclei; ++n)
    for (auto [kind, dst] : {std::pair<std::string, ShiftTargets*>{"assigned", &b.assigned[n]}, {"unassigned", &b.unassigned[n]}}) {
      std::string base = kind + "." + kNuc[n] + ".";
      if (!f.tensors.count(base + "index")) continue;
      dst->index = get(base + "index");
      dst->target = get(base + "target");
      dst->offsets = get(base + "offsets");
    }
  return b;
}

ShiftBatch batch_to(const ShiftBatch& b, Device d) {
  ShiftBatch o = b;
  o.tokens = b.tokens.to(d);
  o.coords = b.coords.to(d);
  o.key_mask = b.key_mask.to(d);
  o.solvent = b.solvent.to(d);
  if (b.atom_features.defined()) o.atom_features = b.atom_features.to(d);
  if (b.pair_types.defined()) o.pair_types = b.pair_types.to(d);
  for (int n = 0; n < kShiftNuclei; ++n)
    for (auto [src, dst] : {std::pair<const ShiftTargets*, ShiftTargets*>{&b.assigned[n], &o.assigned[n]},
                            {&b.unassigned[n], &o.unassigned[n]}}) {
      if (src->size() == 0) continue;
      dst->index = src->index.to(d);
      dst->target = src->target.to(d);
      dst->offsets = src->offsets.to(d);
    }
  return o;
}

int run_export(const Args& a) {
  const bench::ExportOptions eo = bench::export_options(a, "16,64,256");
  const double lambda = std::stod(a.get("lambda", "1"));

  chem::LoadedShiftModel loaded = chem::load_shift_model(eo.model);
  chem::Dataset dataset = chem::load_dataset(eo.data);
  chem::ShiftDataset data(dataset, eo.split, loaded.standardizer, loaded.data_options);
  ShiftModel& model = *loaded.model;
  model.eval();
  std::filesystem::create_directories(eo.out);
  for (int64_t B : eo.sizes) {
    if (B > data.size())
      throw Error("export: batch size " + std::to_string(B) + " exceeds the " + std::to_string(data.size()) +
                  " usable molecules of the " + eo.split_name + " split");
    std::vector<int64_t> idx(static_cast<size_t>(data.size()));
    std::iota(idx.begin(), idx.end(), int64_t{0});
    chem::SplitMix64(eo.seed * 1000003ull + static_cast<uint64_t>(B)).shuffle(idx);
    idx.resize(static_cast<size_t>(B));
    ShiftBatch batch = data.make_batch(idx);

    NoGradGuard ng;
    ShiftOutput o = model.forward(batch, /*with_delta_pair=*/false);
    Tensor loss = shift_loss(o, batch, loss_options(lambda));
    std::map<std::string, Tensor> t = batch_tensors(batch);
    t["out.shifts"] = o.shifts;
    t["out.loss"] = reshape(loss, {1});
    const std::string path = eo.out + "/shift_batch_" + std::to_string(B) + ".safetensors";
    save_safetensors(path, t,
                     {{"model", eo.model},
                      {"data", eo.data},
                      {"split", eo.split_name},
                      {"seed", std::to_string(eo.seed)},
                      {"lambda", std::to_string(lambda)},
                      {"loss", "l1"}});
    std::printf("%s: B %lld, N %lld, loss %.6f\n", path.c_str(), static_cast<long long>(batch.batch_size()),
                static_cast<long long>(batch.seq_len()), loss.item());
  }
  return 0;
}

int run_time(const Args& a) {
  const std::string model_path = a.need("model"), batch_path = a.need("batch");
  const bench::TimeOptions to = bench::time_options(a);
  const std::string& mode = to.mode;
  const Device dev = to.device;

  SafetensorsFile f = load_safetensors(batch_path);
  const double lambda = f.metadata.count("lambda") ? std::stod(f.metadata.at("lambda")) : 1.0;
  ShiftBatch batch = batch_to(read_batch(f, batch_path), dev);
  chem::LoadedShiftModel loaded = chem::load_shift_model(model_path);
  ShiftModel& model = *loaded.model;
  model.to(dev);
  const ShiftLossOptions lo = loss_options(lambda);

  std::unique_ptr<AdamW> adam;
  if (mode == "train") {
    model.train();
    adam = std::make_unique<AdamW>(model.named_parameters(), AdamWOptions{.lr = 1e-5, .weight_decay = 1e-4}, shift_model_decay);
  } else {
    model.eval();
  }
  auto call = [&]() {
    if (mode == "infer") {
      NoGradGuard ng;
      Tensor s = model.forward(batch, /*with_delta_pair=*/false).shifts;
      bench::sync_device(dev);
      return;
    }
    adam->zero_grad();
    Tensor loss = shift_loss(model.forward(batch, /*with_delta_pair=*/false), batch, lo);
    loss.backward();
    clip_grad_norm(model.parameters(), 1.0);
    adam->step();
    bench::sync_device(dev);
  };
  const bench::Timing tm = bench::time_calls(call, to.repeats);
  bench::report(to, batch.batch_size(), "\"N\": " + std::to_string(batch.seq_len()), tm);
  return 0;
}

}  // namespace
}  // namespace larmor

int main(int argc, char** argv) {
  return larmor::bench::run_tool(argc, argv, "bench_shift_compare", "bench/shift_compare.cpp", larmor::run_export, larmor::run_time);
}
