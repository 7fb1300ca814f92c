// One batch for the shift model: the contract between the data side (chem/shift_data: prepared dataset ->
// batch) and the model side (layers/shift_model, layers/shift_loss). Plain tensors, no chemistry types, so
// the model builds and trains without Open Babel.
//
// Sequences are Uni-Mol style: [CLS] atoms... [SEP] [PAD]..., N = (most atoms in the batch) + 2. Atom i of
// molecule b sits at token position i + 1. Supervision of both kinds is expressed the same way: a flat list
// of token positions whose predictions are compared, as sorted sets, with a list of targets in segments.
//   - assigned shifts: one segment per (atom, nucleus) for 13C/19F/31P (size 1: plain L1/Huber); for 1H
//     one segment per heavy atom with its H tokens against its (expanded) shifts, so diastereotopic
//     hydrogens are matched as a set;
//   - unassigned peak sets: one segment per (molecule, nucleus[, 13C multiplicity class]) with the
//     selected tokens against the sorted peaks.
// Targets are standardised per nucleus with ShiftStandardizer (fit on the training split's assigned shifts).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace larmor {

// Nucleus order shared with chem/nmr.h (Nucleus::H1 = 0, C13 = 1, F19 = 2, P31 = 3).
inline constexpr int kShiftNuclei = 4;

// Optional chemistry inputs (ShiftModelConfig::atom_features / graph_pairs; chem::featurize fills them).
// Atom features: kShiftAtomFeatures ids per token, each already offset into one shared embedding table of
// kShiftAtomFeatureRows rows; id = offset + 0 means "not an atom" ([CLS]/[SEP]/padding), atoms use
// offset + 1 + value:
//   field          offset  values
//   hybridisation   0      0..5 (other/S, SP, SP2, SP3, SP3D, SP3D2)
//   aromatic        7      0/1
//   in ring        10      0/1
//   attached H     13      0..4 (clamped)
//   formal charge  19      -2..2 (clamped) + 2
inline constexpr int kShiftAtomFeatures = 5;
inline constexpr int kShiftAtomFeatureOffsets[kShiftAtomFeatures] = {0, 7, 10, 13, 19};
inline constexpr int kShiftAtomFeatureRows = 25;
// Pair types from the bond graph (explicit H included): 0 = a pair with [CLS]/[SEP]/padding, 1 = the atom
// itself, 2..5 = bonded by a single/double/triple/aromatic bond, 6..12 = shortest path of 2..8 bonds,
// 13 = further apart or not connected.
inline constexpr int kShiftPairTypes = 14;
inline constexpr int kShiftPairMaxPath = 8;

struct ShiftTargets {
  Tensor index;    // (T) i64: flat token position b * N + n of each compared prediction
  Tensor target;   // (T) f32: standardised target shift, aligned with index
  Tensor offsets;  // (S+1) i32: segments over [0, T); within a segment predictions and targets are matched sorted
  int64_t size() const { return index.defined() ? index.numel() : 0; }
};

struct ShiftBatch {
  Tensor tokens;    // (B, N) i32 Uni-Mol token ids ([PAD]=0, [CLS]=1, [SEP]=2, ...)
  Tensor coords;    // (B, N, 3) f32, Å, centred per molecule; [CLS]/[SEP]/[PAD] at the origin
  Tensor key_mask;  // (B, N) i32: 1 for [CLS], atoms and [SEP]; 0 for padding
  Tensor solvent;   // (B) i32 solvent class (chem::Solvent order; 0 = unknown)
  Tensor atom_features;  // (B, N, kShiftAtomFeatures) i32 table rows (see above; 0 rows on [CLS]/[SEP]/padding);
                         // undefined when the rows carried none (models with atom_features need them)
  Tensor pair_types;     // (B, N, N) i32 pair type (see above; 0 on padding); undefined when not carried
  std::array<ShiftTargets, kShiftNuclei> assigned;    // per nucleus; empty Tensors when none
  std::array<ShiftTargets, kShiftNuclei> unassigned;  // per nucleus; empty Tensors when none
  std::vector<int64_t> entries;                       // dataset entry of each row b
  int64_t batch_size() const { return tokens.defined() ? tokens.size(0) : 0; }
  int64_t seq_len() const { return tokens.defined() ? tokens.size(1) : 0; }
};

// Per-nucleus standardisation (StandardScaler as NMRNet++): z = (shift - mean) / std.
struct ShiftStandardizer {
  std::array<double, kShiftNuclei> mean{0, 0, 0, 0};
  std::array<double, kShiftNuclei> std{1, 1, 1, 1};
  double to_z(int nucleus, double ppm) const { return (ppm - mean[nucleus]) / std[nucleus]; }
  double to_ppm(int nucleus, double z) const { return z * std[nucleus] + mean[nucleus]; }
};

}  // namespace larmor
