// The prepared dataset: what `larmor prepare` writes (with Open Babel) and the shift and alignment
// trainers read (on the GPU machine, without Open Babel).
//
// Storage is one safetensors file (layers/safetensors.h), so it is portable, written atomically, verified
// on load, and opens in Python with `safetensors.numpy.load_file` + the JSON metadata. Per-molecule data
// of variable length is stored flat with CSR offsets (`mol.X_offsets[m] .. mol.X_offsets[m+1]` are
// molecule m's rows); strings live in the metadata as JSON arrays. Tensors use only the engine's dtypes.
//
//   tensor                 dtype  shape      content
//   mol.atom_offsets       I64    (M+1)      rows of atom.* per molecule
//   mol.bond_offsets       I64    (M+1)      rows of bond per molecule
//   mol.assigned_offsets   I64    (M+1)      rows of assigned.* per molecule
//   mol.peakset_offsets    I64    (M+1)      rows of peakset.* per molecule
//   mol.split              I32    (M)        Split
//   mol.sources            I32    (M)        bitmask of Source
//   mol.solvent            I32    (M)        Solvent
//   mol.num_input_atoms    I32    (M)        Molecule::num_input_atoms
//   mol.num_record_atoms   I32    (M)        Molecule::num_record_atoms
//   mol.has_coords         I32    (M)        1 when the molecule has 3-D coordinates (else its atom.coords rows are 0)
//   mol.has_input_index    I32    (M)        1 when Molecule::input_index is filled (else its atom.input_index rows are -1)
//   atom.features          I32    (A, 10)    element, formal_charge, hybridization, chirality, aromatic, in_ring,
//                                            degree, num_h, heavy, symmetry_class (heavy/symmetry_class are
//                                            molecule-local indices, as in Molecule; -1 kept)
//   atom.coords            F32    (A, 3)     Å
//   atom.input_index       I32    (A)        Molecule::input_index (atom's index in the input record, -1: added H)
//   bond                   I32    (Bn, 4)    a, b (molecule-local), BondType, BondStereo
//   assigned.atom          I32    (S)        molecule-local atom index (see AssignedShift)
//   assigned.nucleus       I32    (S)        Nucleus
//   assigned.shift         F32    (S)        ppm
//   assigned.count         I32    (S)        measurements behind the median
//   peakset.nucleus        I32    (P)        Nucleus
//   peakset.solvent        I32    (P)        Solvent
//   peakset.peak_offsets   I64    (P+1)      rows of peak.* per peak set (global, not per molecule)
//   peak.shift             F32    (K)        ppm
//   peak.mult              I32    (K)        13C attached-H count (0..3) or -1
//
//   metadata: format = "larmor-dataset", version = "1", molecules = "<M>", info = JSON object (Dataset::info),
//             mol.id / mol.title / mol.smiles / mol.inchikey / mol.formula / mol.note / mol.nmrshiftdb_id = JSON
//             arrays of M strings, mol.tags = JSON array of M objects (SD data items).
//
// Loading checks the format and version, every tensor's presence, dtype and shape, every offset array
// (starts at 0, never decreases, ends at the row count it indexes) and every value range (enums,
// atom indices inside their molecule, finite shifts and coordinates), and throws a larmor::Error naming
// the file and the problem. The safetensors header is capped at 100 MB (the reference implementation's
// limit), so string metadata (ids, SMILES, SD tags) must stay below that: save_dataset checks and says so.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "chem/molecule.h"
#include "chem/nmr.h"
#include "chem/split.h"

namespace larmor::chem {

// Where a molecule's data came from (bits of DatasetEntry::sources; one molecule may have several).
enum class Source : uint32_t { NMR8K = 1, PB = 2, F19 = 4, P31 = 8, Literature = 16 };
inline constexpr int kNumSources = 5;
inline constexpr Source kAllSources[kNumSources] = {Source::NMR8K, Source::PB, Source::F19, Source::P31,
                                                    Source::Literature};
inline constexpr uint32_t kAllSourceBits = 31;
inline constexpr uint32_t source_bit(Source s) { return static_cast<uint32_t>(s); }
const char* source_name(Source s);  // "NMR8K", "pb", "19F", "31P", "literature"

// One experimental shift assigned to an atom.
//  - 13C, 19F, 31P: `atom` is the atom carrying the nucleus; one entry per atom; `shift` is the median
//    over the repeated experimental measurements of that atom (spectra of the same molecule), `count`
//    how many there were.
//  - 1H: `atom` is the HEAVY atom whose hydrogens carry the shift (the NMRShiftDB2 convention; map to the
//    H atoms through Atom::heavy). A heavy atom may have several entries: one per distinct shift of its
//    hydrogens (diastereotopic CH2, NH2 of an amide), each the median over its own repeated measurements.
// The file keeps entries in the order given.
struct AssignedShift {
  int32_t atom = -1;
  Nucleus nucleus = Nucleus::C13;
  float shift = 0.0f;  // ppm
  int32_t count = 1;   // measurements behind the median
  bool operator==(const AssignedShift&) const = default;
};

// One unassigned experimental spectrum: peaks listed per atom (symmetric atoms repeated), as in the
// NMRShiftDB2 pb table; `mult` is parallel to `shifts`.
struct PeakSet {
  Nucleus nucleus = Nucleus::C13;
  Solvent solvent = Solvent::Unknown;
  std::vector<float> shifts;  // ppm
  std::vector<int8_t> mult;   // 13C: attached-H count (0..3) or kMultUnknown; other nuclei: kMultUnknown
  bool operator==(const PeakSet&) const = default;
};

struct DatasetEntry {
  Molecule mol;                // with explicit hydrogens and, normally, 3-D coordinates
  std::string nmrshiftdb_id;   // "" when the molecule is not from NMRShiftDB2
  uint32_t sources = 0;        // bitmask of Source
  Split split = Split::Train;
  Solvent solvent = Solvent::Unknown;  // the solvent of its spectra when they agree, else Unknown
  std::vector<AssignedShift> assigned;
  std::vector<PeakSet> peak_sets;
};

struct Dataset {
  std::vector<DatasetEntry> entries;
  // Provenance: sources, seed, program version, input file sizes/mtimes (the cache key of `larmor prepare`).
  std::map<std::string, std::string> info;
};

inline constexpr const char* kDatasetFormat = "larmor-dataset";
inline constexpr const char* kDatasetVersion = "1";

// Writes the dataset (atomic: a crash never leaves a half-written file under `path`). Throws a
// larmor::Error naming the entry when the dataset is inconsistent (coords or input_index neither empty nor
// one per atom, bond or assigned atom outside its molecule, mult not parallel to shifts, non-finite value, ...).
void save_dataset(const std::string& path, const Dataset& dataset);

// Reads and verifies a dataset file (see the top comment); throws a larmor::Error naming the file.
Dataset load_dataset(const std::string& path);

// Reads only the header: the `info` map of a dataset file, for cache checks without loading the data.
// Throws a larmor::Error naming the file when it is not a larmor dataset of this version.
std::map<std::string, std::string> read_dataset_info(const std::string& path);

// A printable report: molecules per source and split, per nucleus (molecules with assigned shifts,
// assigned shifts, peak sets, peaks) and split, and molecules per solvent and split.
std::string dataset_summary(const Dataset& dataset);

}  // namespace larmor::chem
