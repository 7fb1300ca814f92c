// The data side of the spectrum-structure alignment model (K-M3AID, docs/MODELS.md §2): prepared dataset
// (chem/dataset.h) -> AlignBatch (layers/align_batch.h). No Open Babel, so the GPU machine builds its
// batches itself.
//
// One sample per molecule that has an experimental 13C spectrum (prepare already left predicted spectra
// out). A sample carries three things:
//   - the graph: chem::featurize with graph_hydrogens = false (Hu et al.'s heavy-atom graph, as K-M3AID's
//     RDKit graphs; the H count of a carbon is its multiplicity, not a node). Carbons map to nodes through
//     MoleculeFeatures::atom_node.
//   - atom-level pairs, from assigned 13C shifts (NMR8K): every carbon with an assigned shift -> (its ppm,
//     multiplicity class = its H count; a CH4 carbon, 4 H, gets class 4 "unknown"), ascending node order.
//     Molecules with only an unassigned spectrum have none.
//   - the molecule-level spectrum, a list of DISTINCT peaks (ppm, multiplicity class), ascending ppm:
//       * complete assigned 13C (every carbon of the molecule has a shift): the carbons' (ppm, class) pairs
//         with exact duplicates removed, i.e. one peak per symmetry class when equivalent carbons carry the
//         same shift (they do in the prepared data: one value per class), as a measured spectrum shows them;
//       * else the first 13C unassigned peak set of the entry (the pb table lists peaks per atom with
//         symmetric atoms repeated, or per class): its (ppm, class) pairs with exact duplicates removed;
//         multiplicity -1 (unknown) is class 4;
//       * else (incomplete assignment, no peak set): the assigned carbons' distinct peaks, counted as
//         "partial spectrum" in the stats.
//     Why distinct peaks and not one per carbon (K-M3AID's CSV repeats equivalent carbons): the pb lists are
//     a mixture of both conventions, so only the distinct form is the same for every source, and it is what
//     a user's query peak list looks like (one line per peak), so training, evaluation and `retrieve` see one
//     convention. The binarised CReSS vector is the same either way (a bin is 1 or 0); only the peak-set
//     encoder's pooling would notice.
// Entries without a 13C spectrum, or without a carbon in the graph, are skipped and counted.
//
// The sampler is K-M3AID's: a shuffled pass per epoch, cut into batches of B with the remainder dropped
// (drop_last; the molecule-level InfoNCE's chance level is log B, so every batch has the same B). It is a
// pure function of (number of samples, B, seed, epoch) with its own SplitMix64 stream and Fisher-Yates, so
// a run resumes exactly. No size bucketing: in-batch negatives stay a random draw, as in the paper.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "chem/dataset.h"
#include "layers/align_batch.h"

namespace larmor::chem {

struct AlignDataOptions {
  bool use_assigned = true;   // atom-level pairs and molecule-level spectra from assigned 13C shifts
  bool use_peak_sets = true;  // molecule-level spectra from unassigned 13C peak sets
};

// Where a sample's molecule-level spectrum came from (see the top comment).
enum class AlignSpectrumSource : uint8_t { Assigned = 0, PeakSet = 1, PartialAssigned = 2 };
const char* align_spectrum_source_name(AlignSpectrumSource s);  // "assigned", "peak set", "partial assigned"

// Multiplicity class 0..4 of a carbon with num_h attached hydrogens (0..3; more: 4 unknown) and of a peak
// list's multiplicity (0..3, -1 or anything else: 4).
int32_t align_multiplicity_class(int num_h);

// The molecule-level spectrum as the model reads it: in.peak_ppm / peak_multiplicity = the distinct (ppm,
// class) pairs of `peaks`, ascending ppm (then class). Training, the query embedding and the re-ranking fit
// all read a peak list this way.
void set_distinct_peaks(AlignMoleculeInput& in, std::vector<std::pair<float, int32_t>> peaks);

// The graph part of an AlignMoleculeInput (node/edge arrays, no pairs, no peaks) and the node of every atom
// (-1 for hydrogens). Throws larmor::Error naming the molecule when featurize rejects it.
AlignMoleculeInput align_graph_input(const Molecule& mol, std::vector<int32_t>* atom_node = nullptr);

struct AlignSample {
  int64_t entry = -1;          // index into Dataset::entries
  AlignMoleculeInput input;    // graph, atom-level pairs (maybe none), molecule-level peaks; input.entry = entry
  std::vector<int32_t> carbon_atoms;  // molecule atom of each atom-level pair (parallel to input.carbon_nodes)
  std::vector<int32_t> carbon_class;  // Atom::symmetry_class of each
  int32_t num_carbons = 0;     // carbons in the molecule (the assignment metric's size buckets)
  AlignSpectrumSource spectrum_source = AlignSpectrumSource::Assigned;
  bool has_pairs() const { return !input.carbon_nodes.empty(); }
};

struct AlignDataStats {
  int64_t entries = 0;         // dataset entries in the split
  int64_t samples = 0;
  int64_t with_pairs = 0;      // samples with atom-level pairs
  int64_t pairs = 0;           // atom-level pairs (carbons with an assigned shift)
  int64_t peaks = 0;           // molecule-level peaks over all samples
  std::map<std::string, int64_t> counts;  // spectrum sources and skip reasons, "<what>: <why>" -> count
  std::string report() const;  // printable, one line per number
};

class AlignDataset {
 public:
  // Throws larmor::Error naming the entry when it is inconsistent (assigned atom outside the molecule,
  // molecule that featurize rejects). An assigned 13C shift on a non-carbon atom is skipped and counted.
  AlignDataset(const Dataset& dataset, Split split, const AlignDataOptions& options = {});

  int64_t size() const { return static_cast<int64_t>(samples_.size()); }
  const AlignSample& sample(int64_t i) const;
  const std::vector<AlignSample>& samples() const { return samples_; }
  const AlignDataOptions& options() const { return options_; }
  const AlignDataStats& stats() const { return stats_; }

  // The batch of these samples (indices into samples(); repeats allowed), both spectrum forms filled,
  // atom-level pairs included; AlignBatch::entries = dataset entries. Throws on an empty list or a bad index.
  AlignBatch make_batch(const std::vector<int64_t>& samples) const;

 private:
  std::vector<AlignSample> samples_;
  AlignDataOptions options_;
  AlignDataStats stats_;
};

// A deterministic permutation of 0..n-1 for (seed, stream): SplitMix64 (derive_seed) + Fisher-Yates.
std::vector<int64_t> align_permutation(int64_t n, uint64_t seed, uint64_t stream);

// The training batches of one epoch: permutation (seed, epoch) cut into floor(n / batch) batches of `batch`
// (drop_last). Throws on batch < 1.
std::vector<std::vector<int64_t>> align_epoch_batches(int64_t n, int64_t batch, uint64_t seed, int64_t epoch);

// Fixed evaluation groups (validation loss, in-group retrieval): one permutation for `seed`, cut into
// groups of `size` with the remainder dropped, or ONE group of all n when n < size (n >= 1). Empty for n = 0.
std::vector<std::vector<int64_t>> align_eval_groups(int64_t n, int64_t size, uint64_t seed);

}  // namespace larmor::chem
