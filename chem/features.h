// Model inputs computed from a chem::Molecule, with no Open Babel (the GPU machine featurises prepared
// datasets itself): Uni-Mol tokens and centred coordinates (docs/MODELS.md §3) and the 2D graph of the
// K-M3AID / Hu et al. "pretrain-gnns" featurisation (MODELS.md §2a) plus the richer per-atom features of the
// issue, the heavy atom of every H, and the symmetry classes.
//
// Why the stereo columns are not RDKit's: RDKit's chirality tag (CW/CCW relative to bond order) and bond
// direction (ENDUPRIGHT/ENDDOWNRIGHT, relative to how the SMILES happened to be written) change when the same
// molecule is written in another atom order, and the featurisation must be equivariant to atom order. So both
// are re-expressed against order-invariant atom ranks (invariant_ranks(): colour refinement on the graph):
//   chirality column: 1 (CW) / 2 (CCW) when, looking from the centre towards its lowest-ranked ligand (a lone
//     pair ranks lowest), the other three in increasing rank run clockwise / anticlockwise; 0 when the centre
//     is not a specified stereocentre or two ligands tie in rank. Values 0..2 as in Hu et al.
//   direction column: on both directed edges of a stereo double bond, 1 when the lowest-ranked substituents
//     at its two ends are trans, 2 when cis; 0 on every other bond (single bonds included) and when a side's
//     substituents tie in rank. Values 0..2 as in Hu et al.
// Other categorical columns are embedding indices clamped into the ranges of the constants below.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "chem/molecule.h"
#include "layers/shift_batch.h"

namespace larmor::chem {

// ---- Uni-Mol vocabulary (dict.txt order, then [MASK]) ----
inline constexpr int32_t kTokenPad = 0, kTokenCls = 1, kTokenSep = 2, kTokenUnk = 3, kTokenMask = 30;
inline constexpr int32_t kUniMolVocabSize = 31;
const std::vector<std::string>& unimol_vocabulary();  // (31,) token id -> "[PAD]", "C", "Cl", ..., "[MASK]"
int32_t unimol_token(int atomic_number);             // element token, kTokenUnk when not in the vocabulary

// ---- graph feature sizes (embedding table sizes; self loops and masks are the model's business) ----
inline constexpr int32_t kNumAtomTypes = 118;      // column 0: atomic number - 1
inline constexpr int32_t kNumChiralityTags = 3;    // column 1
inline constexpr int32_t kNumHybridizations = 6;   // column 2: S/other 0, SP 1, SP2 2, SP3 3, SP3D 4, SP3D2 5
inline constexpr int32_t kNumFormalCharges = 11;   // extra column 1: charge + 5, clamped to -5..5
inline constexpr int32_t kNumDegrees = 11;         // extra column 2: 0..10
inline constexpr int32_t kNumHydrogenCounts = 9;   // extra column 3: 0..8
inline constexpr int32_t kNumBondTypes = 4;        // edge column 0: BondType (single, double, triple, aromatic)
inline constexpr int32_t kNumBondDirections = 3;   // edge column 1

struct FeatureOptions {
  // true: every atom is a graph node (node i = atom i). false: heavy atoms only (hydrogens live in the
  // attached-H column), as in Hu et al.'s RDKit graphs; node_atom/atom_node give the mapping.
  bool graph_hydrogens = true;
};

struct MoleculeFeatures {
  int32_t num_atoms = 0;  // N
  int32_t num_nodes = 0;  // V (N with graph_hydrogens, else the number of heavy atoms)
  int32_t num_edges = 0;  // E = 2 * bonds between graph nodes (both directions, no self loops)

  // Uni-Mol
  std::vector<int32_t> atom_tokens;  // (N,) token per atom
  std::vector<int32_t> tokens;       // (N + 2,) [CLS] atom tokens... [SEP]
  std::vector<float> coords;         // (N + 2, 3) row-major, centred on the atoms' mean; [CLS]/[SEP] at the
                                     // origin; empty when the molecule has no 3D coordinates
  // Chemistry inputs of the shift model (layers/shift_batch.h documents the encodings), on the same token
  // sequence: per token kShiftAtomFeatures table rows, and the bond-graph pair type of every token pair.
  std::vector<int32_t> token_features;  // (N + 2, kShiftAtomFeatures)
  std::vector<uint8_t> token_pairs;     // (N + 2, N + 2) row-major, symmetric

  // 2D graph
  std::vector<int32_t> node_atom;      // (V,) atom index of each node
  std::vector<int32_t> atom_node;      // (N,) node of each atom, -1 for hydrogens left out of the graph
  std::vector<int32_t> node_features;  // (V, 3) [atomic number - 1, chirality 0..2, hybridisation 0..5]
  std::vector<int32_t> node_extra;     // (V, 5) [aromatic 0/1, formal charge + 5, degree in the graph,
                                       //         attached H (all H, also when left out), in ring 0/1]
  std::vector<int32_t> edge_index;     // (2, E) row 0 source nodes, row 1 target nodes; bond k of the graph
                                       // gives edges 2k (a->b) and 2k+1 (b->a)
  std::vector<int32_t> edge_features;  // (E, 2) [bond type 0..3, direction 0..2]
  std::vector<int32_t> edge_bond;      // (E,) index into Molecule::bonds

  // Per atom
  std::vector<int32_t> heavy_atom;      // (N,) the heavy atom a hydrogen belongs to; heavy atoms: themselves
  std::vector<int32_t> symmetry_class;  // (N,) Atom::symmetry_class
  std::vector<int32_t> rank;            // (N,) invariant_ranks()
};

// Throws larmor::Error naming the molecule when its atoms/bonds are inconsistent (index out of range,
// coords of the wrong length).
MoleculeFeatures featurize(const Molecule& mol, const FeatureOptions& options = {});

// Order-invariant atom ranks: colour refinement (element, charge, aromaticity, ring, degree, H count, then
// repeatedly the sorted multiset of (neighbour rank, bond type)) until stable; ranks are dense, 0-based and
// sorted by the refined colour, so relabelling the atoms permutes them and never changes them.
std::vector<int32_t> invariant_ranks(const Molecule& mol);

}  // namespace larmor::chem
