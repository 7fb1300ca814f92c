// bench_align_compare: larmor's half of `bench/compare.sh --task align`, the side-by-side comparison with the
// PyTorch reference of the spectrum-structure alignment model (bench/reference/align_reference.py).
//
//   bench_align_compare export --data D.safetensors --model M.safetensors --out DIR
//                              [--split test] [--batch-sizes 16,64,128,256] [--seed 1]
//     Draws B spectra of the split (align_permutation(usable samples, seed, B), first B) for each B and
//     writes DIR/align_batch_<B>.safetensors: every AlignBatch tensor as the model reads it (node_features,
//     node_hydrogens when present, node_offsets, edge_index, edge_features, carbon_nodes, carbon_offsets,
//     carbon_ppm, carbon_multiplicity, spectrum (B, 4000), peak_ppm / peak_multiplicity / peak_mask, entries)
//     and, for the parity check, our eval-mode outputs: the four projected embeddings `out.spectrum`,
//     `out.graph` (B, Dp), `out.peak`, `out.carbon` (Nc, Dp), and `out.loss` (align_contrastive_loss with
//     the checkpoint's AlignLossOptions) with its parts `out.molecule_loss`, `out.atom_loss`.
//   bench_align_compare time --model M --batch FILE [--mode infer|train] [--threads T] [--repeats R]
//                            [--device cpu|cuda]
//     Times one call on that batch after two warm-up calls and prints one JSON line (median / min ms,
//     molecules/s). infer: eval mode, no autograd tape, the four embeddings (encode_graph, encode_spectrum,
//     encode_peaks). train: one full training step as chem/align_training.cpp takes it (zero_grad, forward
//     in training mode, model.loss, backward, gradient clipping at 1, AdamW with the training defaults
//     lr 1e-3, weight decay 1e-3 and align_model_decay).
//     The batch stays on the host, as in training: the model moves what it reads to its device itself
//     (GinGraph::build, the spectrum, the peaks), so that transfer is part of the timed call on cuda.
//
// Why a separate program and not a Google Benchmark case: the batches are real molecules from a prepared
// dataset, fixed once and read by both engines, so the two timings and the embedding / loss check are on
// identical inputs. Same conventions as bench_shift_compare (bench/shift_compare.cpp), so compare.sh drives
// both the same way.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "chem/align_data.h"
#include "chem/align_training.h"
#include "chem/dataset.h"
#include "bench/compare_util.h"
#include "engine/error.h"
#include "engine/thread_pool.h"
#include "layers/align_model.h"
#include "layers/optim.h"
#include "layers/safetensors.h"

namespace larmor {
namespace {

using bench::Args;
using bench::parse_sizes;

// ---- the batch file -------------------------------------------------------------------------------------
// Every AlignBatch field under its own name; undefined ones (node_hydrogens of a batch without them) are
// left out, and read_batch leaves them undefined again.
std::map<std::string, Tensor> batch_tensors(const AlignBatch& b) {
  std::map<std::string, Tensor> t = {{"node_features", b.node_features},   // (V, 3) i32
                                     {"node_offsets", b.node_offsets},     // (B+1) i32
                                     {"edge_index", b.edge_index},         // (2, E) i32
                                     {"edge_features", b.edge_features},   // (E, 2) i32
                                     {"carbon_nodes", b.carbon_nodes},     // (Nc) i32
                                     {"carbon_offsets", b.carbon_offsets}, // (B+1) i32
                                     {"carbon_ppm", b.carbon_ppm},         // (Nc) f32
                                     {"carbon_multiplicity", b.carbon_multiplicity},  // (Nc) i32
                                     {"spectrum", b.spectrum},             // (B, 4000) f32
                                     {"peak_ppm", b.peak_ppm},             // (B, P) f32
                                     {"peak_multiplicity", b.peak_multiplicity},  // (B, P) i32
                                     {"peak_mask", b.peak_mask}};          // (B, P) i32
  if (b.node_hydrogens.defined()) t["node_hydrogens"] = b.node_hydrogens;  // (V) i32
  for (auto it = t.begin(); it != t.end();) it = it->second.defined() ? std::next(it) : t.erase(it);
  if (!b.entries.empty())
    t["entries"] = Tensor::from_vector<int64_t>(b.entries, {static_cast<int64_t>(b.entries.size())});  // (B) i64
  return t;
}

AlignBatch read_batch(const SafetensorsFile& f, const std::string& path) {
  auto get = [&](const std::string& k) {
    auto it = f.tensors.find(k);
    if (it == f.tensors.end()) throw Error(path + ": no tensor '" + k + "' (not a bench_align_compare batch file?)");
    return it->second;
  };
  auto opt = [&](const std::string& k) {
    auto it = f.tensors.find(k);
    return it == f.tensors.end() ? Tensor() : it->second;
  };
  AlignBatch b;
  b.node_features = get("node_features");
  b.node_hydrogens = opt("node_hydrogens");
  b.node_offsets = get("node_offsets");
  b.edge_index = get("edge_index");
  b.edge_features = get("edge_features");
  b.carbon_nodes = get("carbon_nodes");
  b.carbon_offsets = get("carbon_offsets");
  b.carbon_ppm = get("carbon_ppm");
  b.carbon_multiplicity = get("carbon_multiplicity");
  b.spectrum = opt("spectrum");
  b.peak_ppm = opt("peak_ppm");
  b.peak_multiplicity = opt("peak_multiplicity");
  b.peak_mask = opt("peak_mask");
  if (Tensor e = opt("entries"); e.defined()) b.entries = e.to_vector<int64_t>();
  b.validate();
  return b;
}

int run_export(const Args& a) {
  const bench::ExportOptions eo = bench::export_options(a, "16,64,128,256");

  chem::LoadedAlignModel loaded = chem::load_align_model(eo.model);
  chem::Dataset dataset = chem::load_dataset(eo.data);
  chem::AlignDataset data(dataset, eo.split, loaded.data_options);
  AlignModel& model = *loaded.model;
  const AlignLossOptions lo = AlignLossOptions::from(model.config());
  std::filesystem::create_directories(eo.out);
  for (int64_t B : eo.sizes) {
    if (B > data.size())
      throw Error("export: batch size " + std::to_string(B) + " exceeds the " + std::to_string(data.size()) +
                  " usable spectra of the " + eo.split_name + " split");
    std::vector<int64_t> idx = chem::align_permutation(data.size(), eo.seed, static_cast<uint64_t>(B));
    idx.resize(static_cast<size_t>(B));
    AlignBatch batch = data.make_batch(idx);

    model.eval();
    NoGradGuard ng;
    AlignGraphEmbeddings g = model.encode_graph(batch);  // (B, Dp), (Nc, Dp)
    Tensor s = model.encode_spectrum(batch);              // (B, Dp)
    Tensor p = model.encode_peaks(batch);                 // (Nc, Dp)
    const std::vector<float> ppm32 = batch.carbon_ppm.to_vector<float>();
    AlignLossParts parts;
    Tensor loss = align_contrastive_loss(s, g.molecule, p, g.carbon, std::vector<double>(ppm32.begin(), ppm32.end()), lo, &parts);
    std::map<std::string, Tensor> t = batch_tensors(batch);
    t["out.spectrum"] = s;
    t["out.graph"] = g.molecule;
    t["out.peak"] = p;
    t["out.carbon"] = g.carbon;
    t["out.loss"] = reshape(loss, {1});
    t["out.molecule_loss"] = Tensor::from_vector<float>({static_cast<float>(parts.molecule)}, {1});
    t["out.atom_loss"] = Tensor::from_vector<float>({static_cast<float>(parts.atom)}, {1});
    const std::string path = eo.out + "/align_batch_" + std::to_string(B) + ".safetensors";
    save_safetensors(path, t,
                     {{"model", eo.model},
                      {"data", eo.data},
                      {"split", eo.split_name},
                      {"seed", std::to_string(eo.seed)},
                      {"task", "align"}});
    std::printf("%s: B %lld, V %lld, E %lld, Nc %lld, loss %.6f (molecule %.6f, atom %.6f)\n", path.c_str(),
                static_cast<long long>(batch.batch_size()), static_cast<long long>(batch.num_nodes()),
                static_cast<long long>(batch.num_edges()), static_cast<long long>(batch.num_carbons()), parts.total,
                parts.molecule, parts.atom);
  }
  return 0;
}

int run_time(const Args& a) {
  const std::string model_path = a.need("model"), batch_path = a.need("batch");
  const bench::TimeOptions to = bench::time_options(a);
  const std::string& mode = to.mode;
  const Device dev = to.device;

  const AlignBatch batch = read_batch(load_safetensors(batch_path), batch_path);  // host, as in training
  chem::LoadedAlignModel loaded = chem::load_align_model(model_path);
  AlignModel& model = *loaded.model;
  model.to(dev);

  std::unique_ptr<AdamW> adam;
  if (mode == "train") {
    model.train();
    AdamWOptions ao;  // torch's AdamW defaults with the alignment training's lr and weight decay
    ao.lr = 1e-3;
    ao.weight_decay = 1e-3;
    adam = std::make_unique<AdamW>(model.named_parameters(), ao, align_model_decay);
  } else {
    model.eval();
  }
  auto call = [&]() {
    if (mode == "infer") {
      NoGradGuard ng;
      AlignGraphEmbeddings g = model.encode_graph(batch);
      Tensor s = model.encode_spectrum(batch);
      Tensor p = model.encode_peaks(batch);
      bench::sync_device(dev);
      return;
    }
    adam->zero_grad();
    Tensor loss = model.loss(batch);
    loss.backward();
    clip_grad_norm(model.parameters(), 1.0);
    adam->step();
    bench::sync_device(dev);
  };
  const bench::Timing tm = bench::time_calls(call, to.repeats);
  bench::report(to, batch.batch_size(), "\"V\": " + std::to_string(batch.num_nodes()) + ", \"Nc\": " + std::to_string(batch.num_carbons()), tm);
  return 0;
}

}  // namespace
}  // namespace larmor

int main(int argc, char** argv) {
  return larmor::bench::run_tool(argc, argv, "bench_align_compare", "bench/align_compare.cpp", larmor::run_export, larmor::run_time);
}
