// One batch for the spectrum-structure alignment model (K-M3AID, docs/MODELS.md §2): the contract between the
// data side (prepared dataset -> batch) and the model side (layers/align_model). Plain tensors, no chemistry
// types, so the model builds and trains without Open Babel.
//
// Why it is laid out this way:
//   - The B molecular graphs are one disjoint graph (PyG-style batching): node and edge arrays are the
//     per-molecule arrays of chem::MoleculeFeatures concatenated, with node ids offset by the nodes before
//     them. Molecules own contiguous node ranges (node_offsets, a CSR), which is what the segment_sum op needs
//     for sum pooling. Self loops are NOT in the batch: the model adds them (bond type 4), as Hu et al.'s GIN.
//   - The atom-level pairs (a carbon and its assigned peak) are one flat list over the whole batch, in
//     molecule order, because the knowledge-guided InfoNCE compares every carbon with every peak of the batch
//     (cross-molecule pairs included, MODELS.md §2c). A molecule with an unassigned spectrum simply
//     contributes no atom-level pairs (carbon_offsets[b] == carbon_offsets[b+1]); every molecule has a
//     molecule-level spectrum.
//   - The molecule-level spectrum comes in the two forms the two spectrum encoders read: the CReSS 4000-bin
//     binarised vector (MODELS.md §2a) and a padded peak set (ppm, multiplicity, mask). Only the form the
//     model's encoder needs must be present; make_align_batch fills both.
//
// Multiplicity classes (13C off-resonance multiplicity = number of attached H): 0 = s (C), 1 = d (CH),
// 2 = t (CH2), 3 = q (CH3), 4 = unknown (peak lists without multiplicities). K-M3AID's pattern_index 1..4 is
// class pattern_index - 1.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace larmor {

// The CReSS spectrum grid: bin k covers ppm in [-50 + 0.1 k - 0.05, -50 + 0.1 k + 0.05); bin = round((ppm + 50) * 10)
// clamped into [0, 3999] (out-of-range peaks land in the edge bins, as K-M3AID's code).
inline constexpr int64_t kAlignSpectrumBins = 4000;
inline constexpr double kAlignSpectrumMinPpm = -50.0;
inline constexpr double kAlignSpectrumBinsPerPpm = 10.0;

inline constexpr int32_t kAlignCarbonType = 5;             // node_features column 0 of carbon (atomic number - 1)
inline constexpr int32_t kAlignNumMultiplicities = 5;      // s, d, t, q, unknown
inline constexpr int32_t kAlignMultiplicityUnknown = 4;
inline constexpr int32_t kAlignNodeFeatureColumns = 3;     // [atomic number - 1, chirality, hybridisation]
inline constexpr int32_t kAlignEdgeFeatureColumns = 2;     // [bond type, bond direction]
inline constexpr int32_t kAlignMaxHydrogens = 4;           // node_hydrogens classes 0..4 (4 = four or more)

struct AlignBatch {
  // ---- the disjoint molecular graph (B molecules, V nodes, E directed edges) ----
  Tensor node_features;  // (V, 3) i32 [atomic number - 1, chirality 0..2, hybridisation 0..5]
                         //   = chem::MoleculeFeatures::node_features of each molecule, concatenated
  Tensor node_hydrogens; // (V) i32 attached hydrogens of each node, clamped to 0..4 (optional: undefined when
                         //   any molecule lacks it; read only by models with node_hydrogens on)
  Tensor node_offsets;   // (B+1) i32 CSR: the nodes of molecule b are [node_offsets[b], node_offsets[b+1]);
                         //   node_offsets[0] = 0, non-decreasing, node_offsets[B] = V
  Tensor edge_index;     // (2, E) i32 global node ids: row 0 sources, row 1 targets; both directions of every
                         //   bond, both ends in the same molecule, no self loops (the model adds them)
  Tensor edge_features;  // (E, 2) i32 [bond type 0..3 (single, double, triple, aromatic), direction 0..2]

  // ---- atom-level pairs: the carbons with an assigned peak, in molecule order (Nc of them) ----
  Tensor carbon_nodes;         // (Nc) i32 global node id of each carbon; strictly increasing (so grouped by
                               //   molecule, ascending node order within one); node_features[c, 0] == 5
  Tensor carbon_offsets;       // (B+1) i32 CSR: molecule b's carbons are [carbon_offsets[b], carbon_offsets[b+1])
  Tensor carbon_ppm;           // (Nc) f32 the assigned shift of each carbon (the "peak" side of the atom level)
  Tensor carbon_multiplicity;  // (Nc) i32 its multiplicity class 0..4
                               //   carbon_ppm / carbon_multiplicity may be undefined when no atom-level
                               //   loss is computed (inference: encode_graph only needs carbon_nodes)

  // ---- the molecule-level spectrum, in two forms (either may be undefined if the encoder does not read it) ----
  Tensor spectrum;           // (B, 4000) f32 binarised 13C spectrum: 1 in every bin holding a peak, else 0
  Tensor peak_ppm;           // (B, P) f32 peaks (ppm, raw); padding entries must be finite (use 0)
  Tensor peak_multiplicity;  // (B, P) i32 class 0..4 (padding entries must be in range too; use 0)
  Tensor peak_mask;          // (B, P) i32 1 = real peak, 0 = padding

  std::vector<int64_t> entries;  // dataset entry of each molecule b (empty or B entries), for bookkeeping

  int64_t batch_size() const { return node_offsets.defined() ? node_offsets.numel() - 1 : 0; }  // B
  int64_t num_nodes() const { return node_features.defined() ? node_features.size(0) : 0; }     // V
  int64_t num_edges() const { return edge_index.defined() ? edge_index.size(1) : 0; }           // E
  int64_t num_carbons() const { return carbon_nodes.defined() ? carbon_nodes.numel() : 0; }     // Nc
  int64_t max_peaks() const { return peak_ppm.defined() ? peak_ppm.size(1) : 0; }              // P
  bool has_atom_pairs() const { return carbon_ppm.defined(); }

  // Checks every defined field: shapes, dtypes, offsets, index ranges, molecule membership of edges and
  // carbons, finiteness and class ranges. Throws larmor::Error naming the field (and the entry) at fault.
  void validate() const;
};

// One molecule as the data side holds it (the chem::MoleculeFeatures layout, local node ids).
struct AlignMoleculeInput {
  std::vector<int32_t> node_features;  // (V * 3) row-major
  std::vector<int32_t> node_hydrogens; // (V) attached H per node (0..4), or empty
  std::vector<int32_t> edge_index;     // (2 * E) row-major: E sources, then E targets
  std::vector<int32_t> edge_features;  // (E * 2) row-major
  std::vector<int32_t> carbon_nodes;   // local node ids of the carbons with an atom-level pair, ascending
  std::vector<float> carbon_ppm;       // (carbon_nodes.size()) assigned shifts
  std::vector<int32_t> carbon_multiplicity;  // (carbon_nodes.size()) classes 0..4
  std::vector<float> peak_ppm;              // the molecule-level spectrum (peaks, any order)
  std::vector<int32_t> peak_multiplicity;   // (peak_ppm.size()) classes 0..4
  int64_t entry = -1;
};

// Concatenates molecules into a batch: offsets node ids, pads the peak sets to P = max(most peaks, min_peaks)
// (padding ppm 0, class 0, mask 0), bins every peak set into `spectrum`. Atom-level fields are always defined
// (possibly with Nc = 0). Validates the result.
AlignBatch make_align_batch(const std::vector<AlignMoleculeInput>& molecules, int64_t min_peaks = 0);

// The CReSS binarisation of one peak list: (4000) with 1 at round((ppm + 50) * 10) clamped to [0, 3999].
// Non-finite ppm values throw.
std::vector<float> bin_spectrum(const std::vector<float>& ppm);
int64_t spectrum_bin(double ppm);

}  // namespace larmor
