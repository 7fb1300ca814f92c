// Molecules from SMILES and MDL molblocks (V2000/V3000) through Open Babel, into the OB-free chem::Molecule.
//
// Why this layer: everything downstream (features, datasets, the GPU machine) must work without Open Babel,
// and every downstream index (NMRShiftDB2 atomIdx, 1H-via-heavy-atom, symmetry classes) depends on one fixed
// atom order. So Open Babel types stay inside ob_molecule.cpp, and the order is ours, not Open Babel's:
// the input's atoms in input order (explicit H where they stand), then the hydrogens Open Babel adds, grouped
// by heavy atom in heavy-atom order (we build that permutation ourselves rather than trust AddHydrogens'
// internal order). Stereo is converted to the index conventions documented in chem/molecule.h.
//
// Validation is strict and per molecule: invalid SMILES (including unbalanced parentheses and aromatic
// systems Open Babel cannot kekulize, which it would otherwise accept silently), dummy/unknown elements,
// empty input, more than kMaxAtoms atoms once hydrogens are added. Each throws a larmor::Error naming the
// record ("<id>: ..."). Salts and mixtures keep the largest fragment by heavy-atom count (ties: the first),
// record it in Molecule::note and keep the input atom indices in Molecule::input_index.
//
// Coordinates: Molecule::coords is filled only from real 3D input (some z non-zero, bond lengths in Angstrom);
// the hydrogens Open Babel adds then get its placed positions. A molblock labelled "3D" whose z are all zero
// (the NMRShiftDB2/CASCADE exports) is a 2D drawing: no coords, and its stereo is perceived as 2D (wedges,
// drawn double-bond geometry). Stereo from every input is perceived the same way, so an unmarked
// stereocentre is Chirality::Unspecified whether it came from SMILES or a molblock.
//
// Threads: Open Babel loads its plugins and initialises its typers lazily through globals. Every entry point
// here calls init_openbabel() (std::call_once) first; call it yourself before starting worker threads that
// use Open Babel directly. Open Babel's global message log is switched off (nothing reaches stderr); while
// a molecule is parsed, the log is switched on under a process-wide lock to collect the warnings that explain
// an error (see chem/ob_util.h), which is why parsing on several threads at once is serialised.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "chem/molecule.h"

namespace larmor::chem {

inline constexpr int kMaxAtoms = 256;  // including hydrogens

// Loads Open Babel's plugins (formats, force fields, ops) and runs one molecule through the perception code
// (aromaticity, hybridisation, rings, stereo, symmetry, canonical SMILES, InChI, MMFF94/UFF typing) so the
// lazily built global tables exist before any worker thread starts. Silences the global message log. Safe to
// call from any thread, any number of times.
void init_openbabel();

// Whether parsing collects Open Babel's messages (default true). Collecting switches the global log on for
// the duration of one parse; code that runs Open Babel on other threads at the same time would race on that
// log, so switch it off (false) around such parallel sections. Off: errors carry only larmor's own reasons,
// and an aromatic system Open Babel cannot kekulize is no longer detected.
void set_openbabel_message_capture(bool on);

// One molecule. `id` names it in errors and becomes Molecule::id. SMILES: "SMILES [name]" (a name after
// whitespace becomes the title). Throws larmor::Error "<id>: <reason>".
Molecule molecule_from_smiles(const std::string& smiles, const std::string& id);
Molecule molecule_from_molblock(const std::string& molblock, const std::string& id);

enum class MoleculeFormat : uint8_t { Auto = 0, Sdf = 1, Smiles = 2 };

// One record of a file: a molecule or the reason it was rejected.
struct MoleculeRecord {
  int64_t number = 0;   // 1-based record number (SDF record / non-blank SMILES line)
  int64_t line = 0;     // 1-based line where the record starts
  std::string id;       // "<source>:<number>" for SDF, "<source>:<line>" for SMILES; also Molecule::id
  std::string title;    // SDF title line / SMILES name
  std::map<std::string, std::string> tags;  // SD data items, verbatim (multi-line values joined by '\n')
  std::optional<Molecule> molecule;         // set when the record was read
  std::string error;  // non-empty when it was not: "<source> record 3 (line 41): <reason>" (SDF),
                      // "<source>:<line>: <reason>" (SMILES)
  bool ok() const { return molecule.has_value(); }
};

// Iterates an SD file (V2000/V3000 records separated by "$$$$"; gzip/xz read directly) or a SMILES file
// (one "SMILES [name]" per line; blank lines and lines starting with '#' skipped) record by record. A bad
// record yields an error record and reading goes on; only an unreadable/truncated compressed stream ends the
// iteration (with a final error record naming the line reached). Format Auto: by extension (.sdf .sd .mol
// [.gz/.xz] -> SDF; .smi .smiles .can .ism -> SMILES), otherwise SDF when a V2000/V3000 counts line or
// "$$$$" appears in the first lines, else SMILES. Path "-" reads stdin.
class MoleculeReader {
 public:
  explicit MoleculeReader(const std::string& path, MoleculeFormat format = MoleculeFormat::Auto);
  // Text already in memory (`name` appears in ids and messages).
  static MoleculeReader from_string(std::string name, std::string text, MoleculeFormat format = MoleculeFormat::Auto);
  // Reads the whole stream first (stdin-like sources of modest size).
  static MoleculeReader from_stream(std::string name, std::istream& in, MoleculeFormat format = MoleculeFormat::Auto);

  MoleculeReader(MoleculeReader&&) noexcept;
  MoleculeReader& operator=(MoleculeReader&&) noexcept;
  ~MoleculeReader();

  // Next record; false at the end of the input.
  bool next(MoleculeRecord& record);
  MoleculeFormat format() const;
  const std::string& source() const;

 private:
  struct State;
  explicit MoleculeReader(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace larmor::chem
