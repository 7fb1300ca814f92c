// A hand-built training fixture shared by the shift training, pretraining, prediction and assignment tests:
// small molecules with 3-D coordinates and shifts that depend on their structure, so a tiny model can learn
// them in seconds; the training options those tests start from; one tiny model trained on them once per
// process (the prediction and assignment tests only need some trained model); and a bytewise comparison of
// two checkpoints (the exact-resume tests).
#pragma once
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "chem/dataset.h"
#include "chem/shift_training.h"
#include "layers/safetensors.h"
#include "tests/test_util.h"

namespace larmor::test {

using namespace larmor::chem;

inline // A zig-zag chain of n carbons (optionally ending in an O) with explicit H; 13C shift = 8 + 9 * (heavy
// neighbours) + 4 * (O neighbour), 1H (on its heavy atom) = 0.8 + 0.4 * (heavy neighbours) + 2 * (on C next to O).
DatasetEntry chain_entry(int n, bool oxygen, Split split) {
  DatasetEntry e;
  e.split = split;
  Molecule& m = e.mol;
  m.id = "chain" + std::to_string(n) + (oxygen ? "o" : "");
  const int heavy = n + (oxygen ? 1 : 0);
  for (int i = 0; i < heavy; ++i) {
    Atom a;
    a.element = (oxygen && i == heavy - 1) ? 8 : 6;
    a.heavy = i;
    a.symmetry_class = i;
    m.atoms.push_back(a);
    m.coords.push_back({1.25f * i, (i % 2) ? 0.85f : 0.0f, 0.0f});
    if (i > 0) m.bonds.push_back({i - 1, i});
  }
  std::vector<int> nb(heavy, 0);
  for (int i = 0; i < heavy; ++i) nb[i] = (i > 0) + (i + 1 < heavy);
  for (int i = 0; i < heavy; ++i) {
    const int nh = (m.atoms[i].element == 8 ? 2 : 4) - nb[i];
    for (int k = 0; k < nh; ++k) {
      Atom h;
      h.element = 1;
      h.heavy = i;
      h.symmetry_class = heavy + i;
      const int32_t idx = static_cast<int32_t>(m.atoms.size());
      m.atoms.push_back(h);
      const float ang = 2.1f * k + 0.5f * i;
      m.coords.push_back({1.25f * i + 0.3f * std::cos(ang), ((i % 2) ? 0.85f : 0.0f) + (i % 2 ? 0.9f : -0.9f),
                          1.0f * std::sin(ang)});
      m.bonds.push_back({i, idx});
      ++m.atoms[i].num_h;
    }
    m.atoms[i].degree = static_cast<uint8_t>(nb[i] + m.atoms[i].num_h);
  }
  for (int i = 0; i < heavy; ++i) {
    const bool next_to_o = oxygen && (i == heavy - 2);
    if (m.atoms[i].element == 6)
      e.assigned.push_back({i, Nucleus::C13, 8.0f + 9.0f * nb[i] + (next_to_o ? 40.0f : 0.0f), 1});
    if (m.atoms[i].num_h > 0)
      e.assigned.push_back({i, Nucleus::H1, 0.8f + 0.4f * nb[i] + (next_to_o ? 2.5f : 0.0f) + (m.atoms[i].element == 8 ? 1.0f : 0.0f), 1});
  }
  e.solvent = (n % 2) ? Solvent::CDCl3 : Solvent::DMSO;
  e.sources = source_bit(Source::NMR8K);
  return e;
}

// Chains of 2..6 carbons, each with and without the O: 7 train, 2 valid, 1 test molecule.
inline Dataset chain_dataset() {
  Dataset ds;
  int k = 0;
  for (int n = 2; n <= 6; ++n)
    for (bool o : {false, true}) {
      const Split s = (k % 5 == 3) ? Split::Valid : (k % 5 == 4 && k > 5 ? Split::Test : Split::Train);
      ds.entries.push_back(chain_entry(n, o, s));
      ++k;
    }
  return ds;
}

// Labelled-only training of a tiny_shift_config(32, dropout) model in batches of 3 at LR 3e-3, seed 7, no
// periodic checkpoints, writing to `out_dir`; the tests set the epochs or step budget.
inline ShiftTrainOptions tiny_train_options(const std::string& out_dir, double dropout) {
  ShiftTrainOptions o;
  o.out_dir = out_dir;
  o.model_config = tiny_shift_config(32, dropout);
  o.mode = SamplerMode::LabelledOnly;
  o.batch_labelled = 3;
  o.lr = 3e-3;
  o.seed = 7;
  o.checkpoint_every = 0;
  o.eval_batch = 4;
  return o;
}

// The best checkpoint of a tiny model trained for 15 epochs without dropout on the chain dataset (its test
// molecule moved to the training split); trained on first use, once per process (a few seconds).
inline const std::string& tiny_trained_model() {
  static const TempDir dir("tiny_shift_model");
  static const std::string path = [] {
    Dataset ds = chain_dataset();
    for (DatasetEntry& e : ds.entries)
      if (e.split == Split::Test) e.split = Split::Train;
    ShiftTrainOptions o = tiny_train_options(dir.file("run"), 0.0);
    o.epochs = 15;
    return train_shift(ds, o).best_path;
  }();
  return path;
}

// How many tensors of checkpoint `a` differ bytewise from the same-named tensor of `b`; -1 when the two
// files do not hold the same names and sizes.
inline int differing_tensors(const std::string& a, const std::string& b) {
  const SafetensorsFile fa = load_safetensors(a), fb = load_safetensors(b);
  if (fa.tensors.size() != fb.tensors.size()) return -1;
  int differing = 0;
  for (const auto& [name, t] : fa.tensors) {
    auto it = fb.tensors.find(name);
    if (it == fb.tensors.end() || t.nbytes() != it->second.nbytes()) return -1;
    if (std::memcmp(t.raw_data(), it->second.raw_data(), t.nbytes()) != 0) ++differing;
  }
  return differing;
}

}  // namespace larmor::test
