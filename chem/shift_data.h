// The data side of the shift model: prepared dataset (chem/dataset.h) -> ShiftBatch (layers/shift_batch.h).
// No Open Babel, so the GPU machine builds its batches itself.
//
// Why it is built this way: every kind of supervision (assigned atoms, diastereotopic hydrogens, unassigned
// peak lists, 13C multiplicity classes) becomes the same thing, a segment of token positions whose
// predictions are matched as a sorted set against a segment of targets. So all target rules live here, once,
// run once per molecule when the ShiftDataset is built, and the model side only sorts and subtracts. Tokens
// and centred coordinates come from chem::featurize (the Uni-Mol vocabulary is not repeated here), so
// training, evaluation and prediction see identical inputs.
//
// ---- Target rules (what becomes a segment; everything skipped is counted in ShiftDataStats) ----
// An entry is used only when it has 3-D coordinates (the model is geometric): else "no 3-D coordinates".
//
// Assigned 13C / 19F / 31P: one segment of size 1 per (atom, nucleus), token = atom + 1. An entry naming an
//   atom of another element (C for 13C, F for 19F, P for 31P) is skipped and counted: the prepared data
//   should never contain one, and a mislabelled atom would teach the head the wrong element.
// Assigned 1H: the dataset stores 1H on the HEAVY atom, one entry per distinct shift of its hydrogens. One
//   segment per heavy atom: its H atoms (Atom::heavy == that atom) as tokens, its k shifts expanded to its
//   n hydrogens as targets, so a diastereotopic CH2 (two shifts) is matched as a set and the model never
//   has to guess which H is pro-R:
//     k == 1          -> the shift n times (CH3: 3 equal targets; every H of a group is supervised);
//     n % k == 0      -> each shift n / k times (k == n: each once; CH2 with 2 shifts);
//     otherwise       -> skipped ("k shifts do not divide n H": 2 shifts on a CH3 says nothing about which
//                        H carries which value; 6 such atoms in NMR8K), and k > n or n == 0 likewise.
// Unassigned peak sets (pb table; peaks listed per atom, symmetric atoms repeated, no atom indices kept):
//   only the first usable set per (entry, nucleus) is used (options.all_peak_sets = true: every usable set),
//   so a molecule measured five times does not weigh five times; sets of a nucleus that also has assigned
//   shifts in the same entry are skipped ("superseded by assigned shifts": same molecule, strictly less
//   information). The atom sets tried, in order (first whose size equals the number of peaks wins):
//   13C / 19F / 31P (match_peak_set):
//     every atom of the element (#peaks == #atoms)                                   -> PeakRule::PerAtom
//     one atom per symmetry class, the lowest index (symmetric atoms collapsed)    -> PerSymmetryClass
//     anything else is skipped: fewer peaks than classes ("incomplete list") or between #classes and
//     #atoms ("partly collapsed": which duplicates are missing is unknown).
//     13C, options.split_13c_multiplicity (default on): when every peak has a multiplicity and, for each
//     attached-H count 0..3, the chosen carbons with Atom::num_h == m are as many as the peaks with mult m,
//     one segment per non-empty class (CH3/CH2/CH/C matched separately: much less ambiguity than one big
//     sorted set); otherwise one segment over all of them, counted as a note ("multiplicities unknown" or
//     "multiplicity classes disagree with H counts").
//   1H: the pb 1H lists are NOT uniformly per H. Measured on the 17,218 experimental pb 1H spectra (their
//     raw SD atom indices show the listing): most list one peak per H-bearing heavy atom or per symmetry
//     class, a minority one peak per H (a CH3 repeated 3 times), and 35 % list fewer peaks than there are
//     C-H symmetry classes (partial lists). Integrals are absent (intensity 0), so NMRNet++'s expansion by
//     integral is not possible. The rule: try these hydrogen sets, in order, and take the first whose size
//     is #peaks:
//       PerH            all H                                  (per-H list, exchangeable H observed)
//       PerCH           the H on carbon                        (per-H list, OH/NH/SH not observed)
//       PerHeavyAtom    the lowest-index H of each H-bearing heavy atom   (per-group list)
//       PerCHeavyAtom   the same, carbons only                 (per-group list, OH/NH not observed)
//       PerHClass       the lowest-index H of each H symmetry class       (per-group, symmetric collapsed)
//       PerCHClass      the same, C-H hydrogens only
//     so peaks are counted per H when the list is per H (the PerH/PerCH sets are the hydrogens themselves),
//     and per group otherwise (one representative H per group: all H of a non-diastereotopic group share
//     the shift, so the representative's prediction is the group's). Ties: when a per-H set and a per-group
//     set of the right size differ (2 peaks for HO-CH2-Cl: the two C-H, or CH2 + OH) the set is skipped
//     ("ambiguous: per-H or per-group list"; 233 pb spectra, and the atom indices showed the per-H reading
//     wrong in 137 of them); between two different per-group sets the earlier wins (counted as a note; the
//     atom indices agree with it in 217 of 224). No size matches: skipped ("fewer peaks than C-H symmetry
//     classes (incomplete list)" or "peak count matches no counting rule"). On the pb 1H spectra this uses
//     9,326 of 17,218 (PerH 1,754, PerCH 428, PerHeavyAtom 2,977, PerCHeavyAtom 868, PerHClass 2,857,
//     PerCHClass 442); the raw atom indices agree with the chosen reading in 95 %. The same check on the
//     34,344 pb 13C spectra: 30,153 used (27,575 per atom, 2,578 per class), 28,630 of them split by
//     multiplicity.
// Entries left with no segment at all are skipped ("no usable targets").
// Solvent: the entry's solvent (0 with options.use_solvent = false); an entry whose solvent is unknown and
// whose used segments all come from peak sets of one known solvent takes that solvent.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "chem/dataset.h"
#include "layers/shift_batch.h"

namespace larmor::chem {

static_assert(kNumNuclei == kShiftNuclei, "chem::Nucleus and the shift model's nucleus axis must agree");

// Per-nucleus mean and (population) std of the split's assigned shifts, one value per AssignedShift entry
// (1H: per distinct shift of a heavy atom, not expanded). A nucleus without assigned shifts in the split
// falls back to the split's peak-set peaks; with neither it stays mean 0, std 1. A std below 1e-6 (one
// value) is replaced by 1 so to_z never divides by zero.
ShiftStandardizer fit_standardizer(const Dataset& dataset, Split split);

struct ShiftDataOptions {
  std::array<bool, kNumNuclei> nuclei{true, true, true, true};  // indexed by Nucleus
  bool use_assigned = true;
  bool use_unassigned = true;
  bool use_solvent = true;
  bool split_13c_multiplicity = true;  // 13C peak sets matched within CH3/CH2/CH/C classes when consistent
  bool all_peak_sets = false;          // false: first usable peak set per (entry, nucleus)
};

// How a peak set was matched to atoms (see the top comment).
enum class PeakRule : uint8_t {
  Skipped = 0,
  PerAtom,           // 13C/19F/31P: every atom of the element
  PerSymmetryClass,  // 13C/19F/31P: one atom per symmetry class
  PerH,
  PerCH,
  PerHeavyAtom,
  PerCHeavyAtom,
  PerHClass,
  PerCHClass,
};
const char* peak_rule_name(PeakRule r);  // "per atom", "per symmetry class", "per H", ...

struct PeakSetMatch {
  PeakRule rule = PeakRule::Skipped;
  // One per segment: molecule-local atoms (ascending) and their peaks (ppm, ascending), equally many.
  std::vector<std::vector<int32_t>> atoms;
  std::vector<std::vector<float>> shifts;
  std::vector<int8_t> mult;  // per segment: 13C attached-H class 0..3, or kMultUnknown for an unsplit segment
  std::string reason;        // Skipped: why; else a note ("" or why 13C was not split by multiplicity)
  bool ambiguous = false;    // 1H: another counting rule of the same size gave a different atom set
};

// Matches one unassigned peak set to the molecule's atoms (pure function of its arguments).
PeakSetMatch match_peak_set(const Molecule& mol, const PeakSet& set, bool split_13c_multiplicity = true);

enum class SegmentKind : uint8_t { Assigned = 0, Unassigned = 1 };

struct ShiftSegment {
  SegmentKind kind = SegmentKind::Assigned;
  Nucleus nucleus = Nucleus::C13;
  int8_t mult = kMultUnknown;  // unassigned 13C split by multiplicity: the class 0..3
  int32_t begin = 0, end = 0;  // rows of ShiftSample::atoms / shifts
};

// One usable dataset entry, ready to batch.
struct ShiftSample {
  int64_t entry = -1;      // index into Dataset::entries
  int32_t num_atoms = 0;   // atoms (the sequence is num_atoms + 2 long)
  int32_t solvent = 0;     // Solvent class fed to the model
  bool labelled = false;   // has at least one assigned segment
  std::vector<int32_t> tokens;  // (num_atoms + 2) [CLS] atoms [SEP]
  std::vector<float> coords;    // (num_atoms + 2, 3) centred; [CLS]/[SEP] at the origin
  std::vector<int32_t> atom_features;  // (num_atoms + 2, kShiftAtomFeatures) MoleculeFeatures::token_features
  std::vector<uint8_t> pair_types;     // (num_atoms + 2, num_atoms + 2) MoleculeFeatures::token_pairs
  std::vector<ShiftSegment> segments;
  std::vector<int32_t> atoms;   // molecule-local atom of each compared prediction (token = atom + 1)
  std::vector<float> shifts;    // ppm target of each row, ascending within a segment
};

// One molecule's model input, by reference (a ShiftSample's, or one featurized at inference).
struct ShiftInputRow {
  const std::vector<int32_t>* tokens = nullptr;  // (atoms + 2) [CLS] atoms [SEP]
  const std::vector<float>* coords = nullptr;    // (atoms + 2, 3)
  int32_t solvent = 0;                           // Solvent class fed to the model
  int64_t entry = -1;                            // ShiftBatch::entries of the row
  const std::vector<int32_t>* atom_features = nullptr;  // (atoms + 2, kShiftAtomFeatures) or null
  const std::vector<uint8_t>* pair_types = nullptr;     // (atoms + 2, atoms + 2) or null
};

// The input half of a ShiftBatch: tokens, coords, key_mask (1 on each row's atoms + 2) padded to the longest
// row, solvent and entries, and atom_features / pair_types when every row carries them; no targets. Throws
// larmor::Error on no rows or a row whose coords are not 3 x tokens (or whose features are not sized to them).
ShiftBatch pad_shift_inputs(const std::vector<ShiftInputRow>& rows);

struct ShiftDataStats {
  int64_t entries = 0;     // dataset entries in the split
  int64_t samples = 0;     // used
  int64_t labelled = 0;    // samples with assigned segments
  int64_t unlabelled = 0;  // samples with only unassigned segments
  std::array<int64_t, kNumNuclei> assigned_targets{}, assigned_segments{};
  std::array<int64_t, kNumNuclei> unassigned_targets{}, unassigned_segments{};
  std::map<std::string, int64_t> counts;  // skip reasons and notes, "<what>: <why>" -> count
  std::string report() const;             // printable, one line per number
};

// The usable entries of one split with their tokens, coordinates and target segments (targets kept in
// ppm; make_batch standardises them). Holds no reference to the Dataset.
class ShiftDataset {
 public:
  // Throws larmor::Error naming the entry when it is inconsistent (assigned atom outside the molecule,
  // molecule that featurize rejects).
  ShiftDataset(const Dataset& dataset, Split split, const ShiftStandardizer& standardizer,
               const ShiftDataOptions& options = {});

  int64_t size() const { return static_cast<int64_t>(samples_.size()); }
  const ShiftSample& sample(int64_t i) const;
  const std::vector<ShiftSample>& samples() const { return samples_; }
  const ShiftStandardizer& standardizer() const { return standardizer_; }
  const ShiftDataOptions& options() const { return options_; }
  const ShiftDataStats& stats() const { return stats_; }

  // Batch of the given samples (indices into samples(), not dataset entries; repeats allowed), padded to
  // the longest + 2. ShiftBatch::entries holds each row's dataset entry. Per nucleus and kind, segments
  // follow row order, then the sample's segment order; index = b * N + atom + 1; targets standardised.
  // Throws larmor::Error on an empty list or an index out of range.
  ShiftBatch make_batch(const std::vector<int64_t>& samples) const;

 private:
  std::vector<ShiftSample> samples_;
  ShiftStandardizer standardizer_;
  ShiftDataOptions options_;
  ShiftDataStats stats_;
};

// ---- sampling ----
enum class SamplerMode : uint8_t {
  Mixed = 0,       // every batch: labelled_batch labelled + unlabelled_batch unlabelled samples
  LabelledOnly,    // labelled samples only, labelled_batch per batch
  UnlabelledOnly,  // samples with only unassigned targets, unlabelled_batch per batch
  All,             // every sample regardless of kind, labelled_batch per batch
};

struct ShiftSamplerOptions {
  SamplerMode mode = SamplerMode::Mixed;
  int64_t labelled_batch = 4;     // B1 (paper: 4)
  int64_t unlabelled_batch = 16;  // B2 (paper: 16)
  int64_t bucket_batches = 100;   // sort by atom count within chunks of this many batches; 0: no bucketing
  uint64_t seed = 0;
};

// Epochs of batches, a pure function of (samples' sizes and kinds, options, epoch): the same on every
// platform (own SplitMix64 and Fisher-Yates; std::shuffle's algorithm is library-defined).
// Per epoch each group is shuffled; Mixed mode pairs the groups "repeat"-style as NMRNet++: the epoch has
// as many batches as the group needing more of them; the other group is cycled (fresh shuffles, appended)
// to fill them, so its samples may repeat within an epoch. When one group is empty, Mixed yields batches of
// the other alone. Bucketing: the stream of each group is cut into chunks of bucket_batches batches, each
// chunk sorted by atom count (stable) and cut into batches; batch j of the labelled stream is paired with
// batch j of the unlabelled stream (both from the same size rank of the same chunk, so they pad alike);
// finally the batch order is shuffled. Only a group that needs all nb batches can leave its last batch short
// (a cycled group fills every batch). Each batch lists labelled samples first.
class ShiftSampler {
 public:
  ShiftSampler(const ShiftDataset& dataset, const ShiftSamplerOptions& options);
  std::vector<std::vector<int64_t>> epoch(int64_t epoch) const;
  int64_t batches_per_epoch() const;
  const ShiftSamplerOptions& options() const { return options_; }

 private:
  ShiftSamplerOptions options_;
  std::vector<int32_t> num_atoms_;
  std::vector<int64_t> labelled_, unlabelled_;
};

// Every sample once, in batches of batch_size; sort_by_size: ascending atom count (stable), for
// evaluation with little padding. Deterministic.
std::vector<std::vector<int64_t>> sequential_batches(const ShiftDataset& dataset, int64_t batch_size,
                                                     bool sort_by_size = true);

// Fraction of the padded (B, N) token grid of these batches that is padding.
double padding_fraction(const ShiftDataset& dataset, const std::vector<std::vector<int64_t>>& batches);

}  // namespace larmor::chem
