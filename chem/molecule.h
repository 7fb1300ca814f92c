// A molecule as the rest of larmor sees it: plain data, no Open Babel types, so datasets, models and the
// GPU machine (which has no Open Babel) can use it. Open Babel fills it (chem/ob_*.cpp).
//
// Atom order: the input's atom order (SMILES: the order atoms are written; SDF: the molblock order,
// explicit H included where they stand), then the hydrogens Open Babel adds, grouped by heavy atom in
// heavy-atom order. Indices are 0-based everywhere, so an NMRShiftDB2 `atomIdx` maps straight onto
// atoms[atomIdx] and a 1H index names the heavy atom whose hydrogens carry the shift.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace larmor::chem {

enum class Hybridization : uint8_t { Other = 0, S = 1, SP = 2, SP2 = 3, SP3 = 4, SP3D = 5, SP3D2 = 6 };
// Tetrahedral stereo in atom-index terms (the convention chem/ob_molecule fills and chem/ob_conformer writes):
// looking from the centre towards its hydrogen (with no H neighbour: its highest-index neighbour; a lone pair
// of a 3-connected centre counts as the highest index), the other neighbours in increasing atom index order
// run clockwise -> Clockwise. Unspecified: a stereocentre whose configuration the input does not give.
enum class Chirality : uint8_t { None = 0, Clockwise = 1, CounterClockwise = 2, Unspecified = 3 };
enum class BondType : uint8_t { Single = 0, Double = 1, Triple = 2, Aromatic = 3 };  // Hu et al. order
// Double-bond (E/Z) stereo as SMILES-style directions on single bonds next to a stereo double bond: the bond
// a->b read as if written "a/b" (Up) or "a\b" (Down). Wedges/hashes of 2D drawings are not stored here: the
// tetrahedral stereo they encode is in Atom::chirality.
enum class BondStereo : uint8_t { None = 0, Up = 1, Down = 2 };

struct Atom {
  uint8_t element = 0;        // atomic number
  int8_t formal_charge = 0;
  Hybridization hybridization = Hybridization::Other;
  Chirality chirality = Chirality::None;
  bool aromatic = false;
  bool in_ring = false;
  uint8_t degree = 0;         // neighbours in the explicit-H graph
  uint8_t num_h = 0;          // attached hydrogens (all explicit after H addition)
  int32_t heavy = -1;         // hydrogens: index of the heavy atom carrying it; heavy atoms: own index
  int32_t symmetry_class = -1;  // topologically equivalent atoms share a class (dense, 0-based)
};

struct Bond {
  int32_t a = 0, b = 0;
  BondType type = BondType::Single;
  BondStereo stereo = BondStereo::None;
};

struct Molecule {
  std::string id;        // record identity for messages and datasets ("nmrshiftdb2:2192", "stdin:3", ...)
  std::string title;     // SDF title line / SMILES name
  std::string smiles;    // canonical SMILES of the kept structure
  std::string inchikey;  // full InChIKey (first block groups stereoisomers)
  std::string formula;   // Hill formula
  std::vector<Atom> atoms;
  std::vector<Bond> bonds;
  std::vector<std::array<float, 3>> coords;  // one per atom (Å); empty when no 3D structure yet
  int32_t num_input_atoms = 0;               // atoms present in the input, before hydrogens were added
  // Salts/mixtures: only the largest fragment is kept. input_index[i] is atom i's index in the input record
  // (all fragments, 0-based), -1 for hydrogens added by Open Babel; num_record_atoms counts the record's
  // atoms before any fragment was dropped. An NMRShiftDB2 atomIdx k maps to the atom i with
  // input_index[i] == k (input_to_atom()[k]); -1 there means the peak points at a removed fragment.
  std::vector<int32_t> input_index;
  int32_t num_record_atoms = 0;
  std::string note;                          // what was done to the input ("kept largest of 2 fragments"), or ""
  std::map<std::string, std::string> tags;   // SD data items, verbatim

  int32_t num_atoms() const { return static_cast<int32_t>(atoms.size()); }
  bool has_3d() const { return !coords.empty(); }
  // (num_record_atoms,) inverse of input_index: atom index of each record atom, -1 when it was dropped.
  std::vector<int32_t> input_to_atom() const {
    std::vector<int32_t> map(static_cast<size_t>(num_record_atoms > 0 ? num_record_atoms : 0), -1);
    for (size_t i = 0; i < input_index.size(); ++i)
      if (input_index[i] >= 0 && input_index[i] < num_record_atoms) map[input_index[i]] = static_cast<int32_t>(i);
    return map;
  }
};

// Element symbols for messages ("C", "Cl"); "?" outside 1..118.
const char* element_symbol(int atomic_number);

}  // namespace larmor::chem
