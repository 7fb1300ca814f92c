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
enum class Chirality : uint8_t { None = 0, Clockwise = 1, CounterClockwise = 2, Unspecified = 3 };
enum class BondType : uint8_t { Single = 0, Double = 1, Triple = 2, Aromatic = 3 };  // Hu et al. order
enum class BondStereo : uint8_t { None = 0, Up = 1, Down = 2 };                    // direction of a single bond next to a double bond / wedge

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
  std::map<std::string, std::string> tags;   // SD data items, verbatim

  int32_t num_atoms() const { return static_cast<int32_t>(atoms.size()); }
  bool has_3d() const { return !coords.empty(); }
};

// Element symbols for messages ("C", "Cl"); "?" outside 1..118.
const char* element_symbol(int atomic_number);

}  // namespace larmor::chem
