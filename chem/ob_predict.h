// Shift prediction for embedding (larmor::ShiftPredictor) and the output formats of `larmor predict`.
//
// Why it is built this way:
//   - One path from molecule to shifts: the checkpoint's own metadata gives the model config, the
//     standardiser and the data options it was trained with (chem::load_shift_model), and the model input
//     comes from chem::featurize exactly as in training, so a prediction sees what training saw.
//   - The model is geometric: a molecule without 3-D coordinates gets one conformer (chem/ob_conformer,
//     deterministic for the seed), which is why this lives on the Open Babel side (ob_ prefix).
//   - Symmetry: the model predicts per atom, and a single conformer breaks topological symmetry slightly
//     (the three methyl H differ by a few hundredths of a ppm). Atoms of one Atom::symmetry_class are
//     chemically equivalent, so every atom's reported shift is the mean over its class (raw per-atom values
//     are kept in AtomShift::raw_ppm). 1H is reported per H and, for readability, per group: the H of one
//     symmetry class with the heavy atoms that carry them ("CH3 on atom 0, 3 H").
//   - Formatting lives here, not in the CLI, so tests and C++ users get the same CSV/JSON/SDF text.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chem/molecule.h"
#include "chem/nmr.h"
#include "chem/ob_conformer.h"

namespace larmor {

namespace chem {
struct LoadedShiftModel;
}

// One atom of a requested nucleus (13C: a carbon; 1H: a hydrogen).
struct AtomShift {
  int32_t atom = -1;                 // 0-based index in chem::Molecule order
  int32_t heavy = -1;                // 1H: the heavy atom carrying it; else == atom
  chem::Nucleus nucleus = chem::Nucleus::C13;
  double shift_ppm = 0;              // mean over the atom's symmetry class (equivalent atoms share it)
  double raw_ppm = 0;                // the model's value for this atom in this conformer
  std::vector<int32_t> equivalent;   // atoms of its symmetry class (ascending, itself included)
};

// Symmetry-equivalent atoms of one nucleus shown together.
struct ShiftGroup {
  chem::Nucleus nucleus = chem::Nucleus::C13;
  std::vector<int32_t> atoms;        // the 13C / 1H atoms of the class (ascending)
  std::vector<int32_t> heavy_atoms;  // 1H: distinct heavy atoms carrying them; else == atoms
  double shift_ppm = 0;              // mean
  std::string environment;           // of the (first) heavy atom: "CH3", "aromatic CH", "C=O", "OH", ...
};

struct ShiftPrediction {
  chem::Molecule molecule;           // with 3-D coordinates (given or generated)
  chem::Solvent solvent = chem::Solvent::Unknown;  // as requested (fed to the model when it was trained with it)
  std::vector<AtomShift> atoms;      // per nucleus in Nucleus order, atoms ascending within a nucleus
  std::vector<ShiftGroup> groups;    // per nucleus, ordered by the group's first (heavy) atom
  bool conformer_generated = false;
  std::string warning;               // conformer notes (UFF fallback, stereo not reproduced), or ""
};

// Nuclei to report, indexed by chem::Nucleus. Default: 1H and 13C.
using NucleusSet = std::array<bool, chem::kNumNuclei>;
inline constexpr NucleusSet kDefaultNuclei{true, true, false, false};

class ShiftPredictor {
 public:
  // Loads config, standardiser and weights. Throws larmor::Error when the file is missing, unreadable or
  // not a shift-model checkpoint.
  explicit ShiftPredictor(const std::string& checkpoint, const chem::ConformerOptions& conformer = {});
  ~ShiftPredictor();
  ShiftPredictor(ShiftPredictor&&) noexcept;
  ShiftPredictor& operator=(ShiftPredictor&&) noexcept;

  // Eval mode, no gradients, deterministic. Builds a conformer when mol has no 3-D coordinates. Throws
  // larmor::Error "<mol id>: ..." when a requested nucleus has no head in the model, the conformer fails, or
  // the molecule uses elements the model cannot read.
  ShiftPrediction predict(const chem::Molecule& mol, chem::Solvent solvent = chem::Solvent::Unknown,
                          const NucleusSet& nuclei = kDefaultNuclei);
  ShiftPrediction predict_smiles(const std::string& smiles, chem::Solvent solvent = chem::Solvent::Unknown,
                                 const NucleusSet& nuclei = kDefaultNuclei, const std::string& id = "smiles");

  NucleusSet available_nuclei() const;  // nuclei with a head in the model
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  chem::ConformerOptions conformer_;
  std::unique_ptr<chem::LoadedShiftModel> model_;
};

// "13C" | "1H" | "19F" | "31P" | "both" (1H + 13C) | "all", or a comma list. Throws larmor::Error.
NucleusSet parse_nucleus_set(const std::string& text);

// Short description of a heavy atom's environment from element, hybridisation, H count and aromaticity:
// "CH3", "CH2", "CH", "C", "aromatic CH", "aromatic C", "=CH2", "=CH", "=C", "C=O", "#CH", "#C", "OH", "NH2", ...
std::string atom_environment(const chem::Molecule& mol, int32_t atom);

// ---- output formats (name = the molecule's name in the output: title, else id) ----
std::string prediction_name(const ShiftPrediction& p);
// Readable: one line per symmetry group with atom indices, element, environment, shift.
std::string format_table(const ShiftPrediction& p);
// CSV: header `molecule,atom_index,element,nucleus,shift_ppm,equivalent_atoms`, one row per atom;
// equivalent_atoms is a ';'-separated list of 0-based indices.
std::string csv_header();
std::string format_csv_rows(const ShiftPrediction& p);
// JSON object: {"molecule","smiles","solvent","atoms":[{atom_index,element,nucleus,heavy_atom,shift_ppm,
// equivalent_atoms}],"groups":[{nucleus,atoms,heavy_atoms,environment,shift_ppm}]}.
std::string format_json(const ShiftPrediction& p);
// SDF record: V2000 molblock with the 3-D coordinates, then NMRShiftDB2-style tags
// "Spectrum 13C 0" = "shift;0.0<S|D|T|Q>;atomIdx|..." (one peak per carbon) and "Spectrum 1H 0" =
// "shift;0.0;heavyAtomIdx|..." (one peak per H, on its heavy atom, as NMRShiftDB2 lists 1H), ending "$$$$".
std::string format_sdf(const ShiftPrediction& p);
// SVG stick spectrum of one nucleus (chem/svg_plots.h): one stick per symmetry group at its shift, height =
// the number of atoms of that nucleus in the group; labels name atoms as format_table does, 0-based:
// 13C (and 19F, 31P) by the atoms themselves ("C3", "C2,C6"), 1H by the heavy atoms carrying the H with the
// H count ("C0 (3H)", "C2,C6 (2H)"). Throws larmor::Error when the molecule has atoms of that nucleus but
// the prediction has none (the nucleus was not requested).
std::string format_svg(const ShiftPrediction& p, chem::Nucleus nucleus);

// `s` as the inside of a JSON string literal: quote and backslash escaped, \n \t \r by name, other control
// characters as \u00XX. Shared by the predict and assign JSON outputs.
std::string json_escape(const std::string& s);

}  // namespace larmor
