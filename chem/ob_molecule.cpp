// SMILES / molblock -> chem::Molecule through Open Babel (see ob_molecule.h for why it is built this way).
//
// The pipeline for one molecule, all under one ObMessageCapture so Open Babel's warnings can explain a
// rejection:
//   parse (plus the checks Open Babel is lenient about) -> reject dummies/unknown elements -> keep the
//   largest fragment -> size check with implicit H counted -> canonical SMILES and InChIKey (heavy-atom
//   structure) -> AddHydrogens -> our atom order -> symmetry classes (OBGraphSym on the H-complete graph)
//   -> stereo in the index conventions of chem/molecule.h -> plain Atom/Bond records.
// Flat "3D" drawings are turned into 2D before anything is perceived (see ob_molecule.h).
// Atoms are matched across AddHydrogens by OBAtom id, never by position, so nothing depends on where Open
// Babel puts the new hydrogens.
#include "chem/ob_molecule.h"

#include <openbabel/atom.h>
#include <openbabel/bitvec.h>
#include <openbabel/bond.h>
#include <openbabel/forcefield.h>
#include <openbabel/graphsym.h>
#include <openbabel/mol.h>
#include <openbabel/obconversion.h>
#include <openbabel/obiter.h>
#include <openbabel/stereo/cistrans.h>
#include <openbabel/stereo/stereo.h>
#include <openbabel/stereo/tetrahedral.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <deque>
#include <istream>
#include <sstream>
#include <utility>

#include "chem/ob_util.h"
#include "chem/text_input.h"
#include "engine/error.h"

namespace larmor::chem {

using OpenBabel::OBAtom;
using OpenBabel::OBBond;
using OpenBabel::OBConversion;
using OpenBabel::OBMol;
using OpenBabel::obErrorLog;

namespace {

std::atomic<bool> g_capture_messages{true};
std::once_flag g_init_once;
bool g_have_inchi = false;

// Where Open Babel's log output goes: nowhere (a stream without a buffer swallows everything).
std::ostream& null_stream() {
  static std::ostream sink(nullptr);
  return sink;
}

// A rejection reason; the public entry points prefix the molecule's id.
struct Reject {
  std::string reason;
};

[[noreturn]] void reject(std::string reason) { throw Reject{std::move(reason)}; }

std::string trim_copy(std::string_view s) { return std::string(trim(s)); }

bool is_known_element(std::string_view symbol) {
  for (int z = 1; z <= 118; ++z)
    if (symbol == element_symbol(z)) return true;
  return false;
}

// Open Babel accepts a SMILES with unclosed branches ("CC(") silently; so are unclosed brackets caught here.
void check_smiles_syntax(const std::string& smiles) {
  int depth = 0;
  bool in_bracket = false;
  for (size_t i = 0; i < smiles.size(); ++i) {
    const char c = smiles[i];
    if (in_bracket) {
      if (c == ']') in_bracket = false;
      continue;
    }
    if (c == '[') in_bracket = true;
    else if (c == '(') ++depth;
    else if (c == ')') {
      if (--depth < 0) reject("invalid SMILES: ')' at position " + std::to_string(i + 1) + " closes no branch");
    }
  }
  if (in_bracket) reject("invalid SMILES: unterminated '[' bracket atom");
  if (depth > 0) reject("invalid SMILES: " + std::to_string(depth) + " unclosed '(' branch(es)");
}

// After Open Babel failed to parse: name an unknown element symbol inside a bracket atom, if there is one.
// Two-letter readings first ("Cl", aromatic "se"), then one letter ("C" of "[Cx]" is known: no verdict).
std::string unknown_bracket_element(const std::string& smiles) {
  size_t pos = 0;
  while ((pos = smiles.find('[', pos)) != std::string::npos) {
    size_t i = ++pos;
    while (i < smiles.size() && std::isdigit(static_cast<unsigned char>(smiles[i]))) ++i;  // isotope
    if (i >= smiles.size() || !std::isalpha(static_cast<unsigned char>(smiles[i]))) continue;
    std::string one(1, static_cast<char>(std::toupper(static_cast<unsigned char>(smiles[i]))));
    std::string two = one;
    if (i + 1 < smiles.size() && std::islower(static_cast<unsigned char>(smiles[i + 1]))) two += smiles[i + 1];
    if (is_known_element(two) || is_known_element(one)) continue;
    return smiles.substr(i, two.size());
  }
  return "";
}

// Element symbols as written in a molblock's atom block (V2000 columns 32-34, V3000 "M  V30 i sym ..."), for
// naming dummy/unknown atoms that Open Babel maps to atomic number 0.
std::vector<std::string> molblock_atom_symbols(const std::string& molblock) {
  std::vector<std::string> lines;
  {
    std::istringstream in(molblock);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines.push_back(line);
    }
  }
  std::vector<std::string> symbols;
  if (lines.size() < 4) return symbols;
  if (lines[3].find("V3000") != std::string::npos) {
    bool in_atoms = false;
    for (const auto& l : lines) {
      if (l.rfind("M  V30 BEGIN ATOM", 0) == 0) { in_atoms = true; continue; }
      if (l.rfind("M  V30 END ATOM", 0) == 0) break;
      if (in_atoms && l.rfind("M  V30 ", 0) == 0) {
        std::istringstream fields(l.substr(7));
        std::string index, symbol;
        fields >> index >> symbol;
        symbols.push_back(symbol);
      }
    }
    return symbols;
  }
  int count = 0;
  try {
    count = std::stoi(lines[3].substr(0, 3));
  } catch (...) {
    return symbols;
  }
  for (int i = 0; i < count && 4 + i < static_cast<int>(lines.size()); ++i) {
    const std::string& l = lines[4 + i];
    symbols.push_back(l.size() > 31 ? trim_copy(std::string_view(l).substr(31, 3)) : "");
  }
  return symbols;
}

Hybridization hybridization_of(OBAtom* atom) {
  if (atom->GetAtomicNum() == 1) return Hybridization::S;  // Open Babel reports 1 (sp) for H
  switch (atom->GetHyb()) {
    case 1: return Hybridization::SP;
    case 2: return Hybridization::SP2;
    case 3: return Hybridization::SP3;
    case 5: return Hybridization::SP3D;
    case 6: return Hybridization::SP3D2;
    default: return Hybridization::Other;
  }
}

std::string hill_formula(const std::vector<Atom>& atoms) {
  std::map<std::string, int> counts;
  for (const auto& a : atoms) ++counts[element_symbol(a.element)];
  std::string out;
  auto put = [&](const std::string& sym) {
    auto it = counts.find(sym);
    if (it == counts.end()) return;
    out += sym;
    if (it->second > 1) out += std::to_string(it->second);
    counts.erase(it);
  };
  if (counts.count("C")) {
    put("C");
    put("H");
  }
  while (!counts.empty()) put(counts.begin()->first);  // std::map: alphabetical
  return out;
}

std::string write_format(OBMol& mol, const char* format) {
  OBConversion conv;
  if (!conv.SetOutFormat(format)) return "";
  std::string text = conv.WriteString(&mol, true);
  // "can" appends "\t<title>"; keep the first field only.
  const size_t end = text.find_first_of("\t\r\n ");
  return trim_copy(text.substr(0, end));
}

// Connected components of the input graph; returns component id per atom (0-based idx order).
std::vector<int> components(OBMol& mol, int* num_components) {
  const int n = static_cast<int>(mol.NumAtoms());
  std::vector<int> comp(n, -1);
  int next = 0;
  for (int start = 0; start < n; ++start) {
    if (comp[start] >= 0) continue;
    std::vector<int> stack{start};
    comp[start] = next;
    while (!stack.empty()) {
      const int i = stack.back();
      stack.pop_back();
      OBAtom* atom = mol.GetAtom(i + 1);
      FOR_NBORS_OF_ATOM(nb, atom) {
        const int j = static_cast<int>(nb->GetIdx()) - 1;
        if (comp[j] < 0) {
          comp[j] = next;
          stack.push_back(j);
        }
      }
    }
    ++next;
  }
  *num_components = next;
  return comp;
}

// Chirality in the convention of chem/molecule.h from an Open Babel tetrahedral configuration.
// `final_of_id` maps OBAtom ids to our atom indices; OBStereo::ImplicitRef stands for a lone pair.
Chirality chirality_of(OpenBabel::OBTetrahedralStereo* ts, const std::vector<int>& final_of_id,
                       const std::vector<Atom>& atoms) {
  using OpenBabel::OBStereo;
  const auto cfg = ts->GetConfig();
  if (!cfg.specified) return Chirality::Unspecified;
  std::vector<unsigned long> ligands{cfg.from, cfg.refs[0], cfg.refs[1], cfg.refs[2]};
  auto key = [&](unsigned long id) -> long {
    if (id == OBStereo::ImplicitRef || id >= final_of_id.size() || final_of_id[id] < 0) return LONG_MAX;
    return final_of_id[id];
  };
  // The viewpoint: the hydrogen, else the highest index (a lone pair counts as highest).
  unsigned long view = OBStereo::NoRef;
  int num_h = 0;
  for (auto id : ligands) {
    const long k = key(id);
    if (k != LONG_MAX && atoms[k].element == 1) {
      view = id;
      ++num_h;
    }
  }
  if (num_h > 1) return Chirality::None;  // two hydrogens: not a stereocentre
  if (num_h == 0) view = *std::max_element(ligands.begin(), ligands.end(),
                                           [&](unsigned long a, unsigned long b) { return key(a) < key(b); });
  const auto towards = ts->GetConfig(view, OBStereo::Clockwise, OBStereo::ViewTowards);
  std::array<long, 3> winding{key(towards.refs[0]), key(towards.refs[1]), key(towards.refs[2])};
  std::array<long, 3> sorted = winding;
  std::sort(sorted.begin(), sorted.end());
  if (sorted[0] == sorted[1] || sorted[1] == sorted[2]) return Chirality::Unspecified;  // two lone pairs?
  // Clockwise when the increasing-index sequence is a rotation of the clockwise sequence.
  for (int r = 0; r < 3; ++r)
    if (winding[r] == sorted[0] && winding[(r + 1) % 3] == sorted[1] && winding[(r + 2) % 3] == sorted[2])
      return Chirality::Clockwise;
  return Chirality::CounterClockwise;
}

BondStereo flip(BondStereo s) { return s == BondStereo::Up ? BondStereo::Down : BondStereo::Up; }

// SMILES-style direction of the bond between p and q read in the orientation p -> q.
BondStereo direction(const Bond& bond, int p) { return bond.a == p ? bond.stereo : flip(bond.stereo); }

// Cis/trans stereo as SMILES-style '/' '\' flags on single bonds (chem/molecule.h): for the double bond b=e,
// pick one substituent bond per side (preferring bonds already flagged for a neighbouring double bond, else
// the lowest atom index) and flag them so that equal symbols in the orientations x->b and e->y mean trans.
void set_cis_trans_flags(OpenBabel::OBCisTransStereo* ct, const std::vector<int>& final_of_id,
                         const std::vector<unsigned long>& id_of_final, std::vector<Bond>& bonds,
                         const std::vector<std::vector<std::pair<int, int>>>& adjacency) {
  const auto cfg = ct->GetConfig();
  if (!cfg.specified) return;
  if (cfg.begin >= final_of_id.size() || cfg.end >= final_of_id.size()) return;
  const int b = final_of_id[cfg.begin], e = final_of_id[cfg.end];
  if (b < 0 || e < 0) return;
  // Substituents (atom, bond index) on each side, single bonds only.
  auto side = [&](int centre, int other) {
    std::vector<std::pair<int, int>> subs;
    for (auto [nb, bi] : adjacency[centre])
      if (nb != other && bonds[bi].type == BondType::Single) subs.emplace_back(nb, bi);
    return subs;
  };
  const auto left = side(b, e), right = side(e, b);
  if (left.empty() || right.empty()) return;
  auto is_trans = [&](int x, int y) -> int {  // 1 trans, 0 cis, -1 unknown
    const unsigned long ix = id_of_final[x], iy = id_of_final[y];
    if (ct->IsTrans(ix, iy)) return 1;
    if (ct->IsCis(ix, iy)) return 0;
    return -1;
  };
  auto pick = [&](const std::vector<std::pair<int, int>>& subs) {
    for (const auto& s : subs)
      if (bonds[s.second].stereo != BondStereo::None) return s;
    return *std::min_element(subs.begin(), subs.end());
  };
  const auto [x, xb] = pick(left);
  BondStereo sym_left = bonds[xb].stereo != BondStereo::None ? direction(bonds[xb], x) : BondStereo::None;
  // Each right substituent needs: symbol(e->y) == symbol(x->b) iff trans(x, y).
  if (sym_left == BondStereo::None) {
    // Let a flagged right bond decide the left symbol, if there is one.
    for (const auto& [y, yb] : right) {
      if (bonds[yb].stereo == BondStereo::None) continue;
      const int t = is_trans(x, y);
      if (t < 0) continue;
      const BondStereo sym_right = direction(bonds[yb], e);
      sym_left = t ? sym_right : flip(sym_right);
      break;
    }
    if (sym_left == BondStereo::None) sym_left = BondStereo::Up;
    bonds[xb].stereo = bonds[xb].a == x ? sym_left : flip(sym_left);
  }
  // Flag the right side: keep any consistent existing flag, else flag the lowest-index substituent.
  const auto [y0, y0b] = pick(right);
  for (const auto& [y, yb] : right) {
    const int t = is_trans(x, y);
    if (t < 0) continue;
    const BondStereo need = t ? sym_left : flip(sym_left);
    if (bonds[yb].stereo != BondStereo::None) {
      if (direction(bonds[yb], e) == need) return;  // already consistent
      continue;                                     // conflicting flag from another double bond: try another
    }
    if (y != y0 && bonds[y0b].stereo == BondStereo::None && is_trans(x, y0) >= 0) continue;  // prefer y0
    bonds[yb].stereo = bonds[yb].a == e ? need : flip(need);
    return;
  }
}

// One OBMol (as parsed, all fragments) -> Molecule. Throws Reject.
Molecule build_molecule(OBMol& input, const std::string& title, const std::vector<std::string>& symbols,
                        bool from_smiles, const ob::ObMessageCapture& capture) {
  if (capture.contains("kekulize"))
    reject("aromatic system cannot be kekulized (invalid aromaticity)" + capture.suffix());
  const int num_record = static_cast<int>(input.NumAtoms());
  if (num_record == 0) reject("empty molecule (no atoms)");
  if (num_record > 4 * kMaxAtoms) reject(std::to_string(num_record) + " atoms before hydrogens (limit " +
                                         std::to_string(kMaxAtoms) + " with hydrogens)");
  FOR_ATOMS_OF_MOL(a, input) {
    if (a->GetAtomicNum() != 0) continue;
    const int i = static_cast<int>(a->GetIdx()) - 1;
    std::string sym = from_smiles ? "*" : (i < static_cast<int>(symbols.size()) ? symbols[i] : "");
    static const char* const kDummies[] = {"*", "R", "R#", "A", "Q", "L", "LP"};
    const bool dummy = sym.empty() || std::any_of(std::begin(kDummies), std::end(kDummies),
                                                  [&](const char* d) { return sym == d; });
    if (dummy)
      reject("dummy atom '" + (sym.empty() ? std::string("?") : sym) + "' at input atom " + std::to_string(i) +
             " (0-based): not a real element");
    reject("unknown element '" + sym + "' at input atom " + std::to_string(i) + " (0-based)");
  }

  // A "3D" molblock whose z are all zero is a 2D drawing (NMRShiftDB2 exports label drawings 3D): perceive
  // its stereo as 2D (wedges and the drawing's double-bond geometry), not from flat "3D" tetrahedra.
  if (input.GetDimension() == 3) {
    bool flat = true;
    FOR_ATOMS_OF_MOL(a, input) if (std::fabs(a->GetZ()) > 1e-4) flat = false;
    if (flat) {
      input.SetDimension(2);
      input.DeleteData(OpenBabel::OBGenericDataType::StereoData);
      input.SetChiralityPerceived(false);
    }
  }

  // ---- salts and mixtures: keep the largest fragment by heavy atoms (ties: the first) ----
  int num_components = 0;
  const std::vector<int> comp = components(input, &num_components);
  OBMol kept_mol;
  OBMol* mol = &input;
  std::vector<int32_t> input_index(num_record);
  for (int i = 0; i < num_record; ++i) input_index[i] = i;
  std::string note;
  if (num_components > 1) {
    std::vector<int> heavy(num_components, 0), total(num_components, 0);
    for (int i = 0; i < num_record; ++i) {
      ++total[comp[i]];
      if (input.GetAtom(i + 1)->GetAtomicNum() > 1) ++heavy[comp[i]];
    }
    const int keep = static_cast<int>(std::max_element(heavy.begin(), heavy.end()) - heavy.begin());
    OpenBabel::OBBitVec atoms_to_keep(num_record + 1);
    for (int i = 0; i < num_record; ++i)
      if (comp[i] == keep) atoms_to_keep.SetBitOn(i + 1);
    std::vector<unsigned int> order;
    if (!input.CopySubstructure(kept_mol, &atoms_to_keep, nullptr, 1, &order))
      reject("could not separate the fragments of the mixture" + capture.suffix());
    input_index.clear();
    for (unsigned int idx : order) input_index.push_back(static_cast<int32_t>(idx) - 1);
    if (static_cast<int>(input_index.size()) != total[keep] || !std::is_sorted(input_index.begin(), input_index.end()))
      reject("internal: fragment copy changed the atom order");
    kept_mol.SetTitle(input.GetTitle());
    // The copied atoms keep their coordinates in per-atom vectors, not in the molecule's coordinate array,
    // and AddHydrogens on such a molecule with coordinates dereferences the missing array: build it.
    if (input.GetCoordinates() != nullptr && kept_mol.GetCoordinates() == nullptr) {
      kept_mol.BeginModify();
      kept_mol.EndModify(false);
    }
    mol = &kept_mol;
    note = "kept largest of " + std::to_string(num_components) + " fragments (" + std::to_string(total[keep]) +
           " of " + std::to_string(num_record) + " input atoms)";
  }
  const int num_kept = static_cast<int>(mol->NumAtoms());

  int with_h = num_kept;
  FOR_ATOMS_OF_MOL(a, *mol) with_h += a->GetImplicitHCount();
  if (with_h > kMaxAtoms)
    reject("too large: " + std::to_string(with_h) + " atoms with hydrogens (limit " + std::to_string(kMaxAtoms) + ")");

  // ---- coordinates of the input: 3D when some z is non-zero and the bond lengths are molecular ----
  bool has_3d = false;
  if (mol->GetDimension() == 3) {
    FOR_ATOMS_OF_MOL(a, *mol) if (std::fabs(a->GetZ()) > 1e-4) has_3d = true;
    double length_sum = 0;
    int bonds = 0;
    FOR_BONDS_OF_MOL(b, *mol) {
      length_sum += b->GetLength();
      ++bonds;
    }
    if (has_3d && bonds > 0 && (length_sum / bonds < 0.8 || length_sum / bonds > 2.6)) {
      has_3d = false;
      char text[96];
      std::snprintf(text, sizeof text, "3D coordinates ignored (mean bond length %.2f, not in Angstrom)",
                    length_sum / bonds);
      note += note.empty() ? text : std::string("; ") + text;
    }
  }

  Molecule out;
  out.title = title;
  out.smiles = write_format(*mol, "can");
  if (g_have_inchi) out.inchikey = write_format(*mol, "inchikey");

  // ---- hydrogens, then our order: input atoms, then added H grouped by heavy atom ----
  std::vector<unsigned long> input_ids;
  FOR_ATOMS_OF_MOL(a, *mol) input_ids.push_back(a->GetId());
  if (!mol->AddHydrogens(false, false)) reject("Open Babel could not add hydrogens" + capture.suffix());
  const int n = static_cast<int>(mol->NumAtoms());
  if (n > kMaxAtoms)
    reject("too large: " + std::to_string(n) + " atoms with hydrogens (limit " + std::to_string(kMaxAtoms) + ")");

  unsigned long max_id = 0;
  FOR_ATOMS_OF_MOL(a, *mol) max_id = std::max<unsigned long>(max_id, a->GetId());
  std::vector<int> final_of_id(max_id + 1, -1);
  std::vector<OBAtom*> ordered;
  ordered.reserve(n);
  for (unsigned long id : input_ids) {
    OBAtom* a = mol->GetAtomById(id);
    if (!a) reject("internal: input atom lost while adding hydrogens");
    final_of_id[id] = static_cast<int>(ordered.size());
    ordered.push_back(a);
  }
  std::vector<std::pair<int, OBAtom*>> added;  // (heavy atom's final index, H)
  FOR_ATOMS_OF_MOL(a, *mol) {
    if (final_of_id[a->GetId()] >= 0) continue;
    int heavy = INT_MAX;
    FOR_NBORS_OF_ATOM(nb, &*a) {
      const int f = final_of_id[nb->GetId()];
      if (f >= 0) heavy = std::min(heavy, f);
    }
    added.emplace_back(heavy, &*a);
  }
  std::stable_sort(added.begin(), added.end(),
                   [](const auto& p, const auto& q) { return p.first < q.first; });
  for (auto& [heavy, a] : added) {
    final_of_id[a->GetId()] = static_cast<int>(ordered.size());
    ordered.push_back(a);
  }
  std::vector<unsigned long> id_of_final(n);
  for (int i = 0; i < n; ++i) id_of_final[i] = ordered[i]->GetId();

  // ---- symmetry classes on the H-complete graph, renumbered densely in order of first appearance ----
  std::vector<unsigned int> raw_classes;
  {
    OpenBabel::OBGraphSym graph_sym(mol);
    graph_sym.ClearSymmetry();  // never reuse classes cached on the molecule by the SMILES writer
    graph_sym.GetSymmetry(raw_classes);
  }
  if (static_cast<int>(raw_classes.size()) != n) reject("internal: symmetry classes for the wrong number of atoms");

  // ---- atoms ----
  out.atoms.resize(n);
  std::map<unsigned int, int32_t> dense;
  for (int i = 0; i < n; ++i) {
    OBAtom* a = ordered[i];
    Atom& atom = out.atoms[i];
    atom.element = static_cast<uint8_t>(a->GetAtomicNum());
    atom.formal_charge = static_cast<int8_t>(std::clamp(a->GetFormalCharge(), -127, 127));
    atom.hybridization = hybridization_of(a);
    atom.aromatic = a->IsAromatic();
    atom.in_ring = a->IsInRing();
    atom.degree = static_cast<uint8_t>(std::min<unsigned>(a->GetExplicitDegree(), 255));
    int num_h = 0, heavy = -1;
    FOR_NBORS_OF_ATOM(nb, a) {
      const int f = final_of_id[nb->GetId()];
      if (nb->GetAtomicNum() == 1) ++num_h;
      else if (heavy < 0 || f < heavy) heavy = f;
    }
    atom.num_h = static_cast<uint8_t>(num_h);
    atom.heavy = atom.element == 1 ? heavy : i;
    const unsigned int raw = raw_classes[a->GetIdx() - 1];
    auto [it, inserted] = dense.emplace(raw, static_cast<int32_t>(dense.size()));
    atom.symmetry_class = it->second;
  }

  // ---- bonds: input bonds in input order, then the added hydrogens' bonds in hydrogen order ----
  std::vector<std::pair<int, Bond>> keyed;
  FOR_BONDS_OF_MOL(bd, *mol) {
    Bond bond;
    bond.a = final_of_id[bd->GetBeginAtom()->GetId()];
    bond.b = final_of_id[bd->GetEndAtom()->GetId()];
    if (bd->IsAromatic()) bond.type = BondType::Aromatic;
    else if (bd->GetBondOrder() == 2) bond.type = BondType::Double;
    else if (bd->GetBondOrder() == 3) bond.type = BondType::Triple;
    else bond.type = BondType::Single;
    const int hi = std::max(bond.a, bond.b);
    keyed.emplace_back(hi >= num_kept ? hi : -1, bond);
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& p, const auto& q) { return p.first < q.first; });
  for (auto& kb : keyed) out.bonds.push_back(kb.second);
  std::vector<std::vector<std::pair<int, int>>> adjacency(n);
  for (int bi = 0; bi < static_cast<int>(out.bonds.size()); ++bi) {
    adjacency[out.bonds[bi].a].emplace_back(out.bonds[bi].b, bi);
    adjacency[out.bonds[bi].b].emplace_back(out.bonds[bi].a, bi);
  }

  // ---- stereo ----
  {
    // Open Babel's SMILES reader records only the stereo the SMILES writes; a molblock gets every stereogenic
    // unit perceived (unspecified ones included). Re-perceive SMILES input too, so an unmarked stereocentre is
    // Unspecified (not None) whichever format the molecule came from.
    if (from_smiles) mol->SetChiralityPerceived(false);
    OpenBabel::OBStereoFacade facade(mol);
    for (auto* ts : facade.GetAllTetrahedralStereo()) {
      const auto cfg = ts->GetConfig();
      if (cfg.center >= final_of_id.size() || final_of_id[cfg.center] < 0) continue;
      out.atoms[final_of_id[cfg.center]].chirality = chirality_of(ts, final_of_id, out.atoms);
    }
    for (auto* ct : facade.GetAllCisTransStereo())
      set_cis_trans_flags(ct, final_of_id, id_of_final, out.bonds, adjacency);
  }

  if (has_3d) {
    out.coords.resize(n);
    for (int i = 0; i < n; ++i)
      out.coords[i] = {static_cast<float>(ordered[i]->GetX()), static_cast<float>(ordered[i]->GetY()),
                       static_cast<float>(ordered[i]->GetZ())};
  }

  out.formula = hill_formula(out.atoms);
  out.num_input_atoms = num_kept;
  out.input_index = std::move(input_index);
  out.input_index.resize(n, -1);
  out.num_record_atoms = num_record;
  out.note = std::move(note);
  return out;
}

Molecule smiles_to_molecule(const std::string& text, const std::string& id) {
  const std::string trimmed = trim_copy(text);
  const size_t space = trimmed.find_first_of(" \t");
  const std::string smiles = trimmed.substr(0, space);
  const std::string title = space == std::string::npos ? "" : trim_copy(std::string_view(trimmed).substr(space));
  if (smiles.empty()) reject("empty SMILES");
  check_smiles_syntax(smiles);
  ob::ObMessageCapture capture;
  OBConversion conv;
  if (!conv.SetInFormat("smi")) reject("Open Babel has no SMILES format (plugins not found)");
  OBMol mol;
  if (!conv.ReadString(&mol, smiles)) {
    const std::string unknown = unknown_bracket_element(smiles);
    if (!unknown.empty()) reject("unknown element '" + unknown + "' in SMILES '" + smiles + "'");
    reject("invalid SMILES '" + smiles + "'" + capture.suffix());
  }
  Molecule m = build_molecule(mol, title, {}, true, capture);
  m.id = id;
  return m;
}

Molecule molblock_to_molecule(const std::string& molblock, const std::string& id) {
  if (trim(molblock).empty()) reject("empty molblock");
  ob::ObMessageCapture capture;
  OBConversion conv;
  if (!conv.SetInFormat("mol")) reject("Open Babel has no MDL format (plugins not found)");
  OBMol mol;
  if (!conv.ReadString(&mol, molblock)) reject("unreadable molblock" + capture.suffix());
  std::string title = mol.GetTitle();
  Molecule m = build_molecule(mol, trim_copy(title), molblock_atom_symbols(molblock), false, capture);
  m.id = id;
  return m;
}

void warm_up() {
  OBConversion conv;
  for (const char* fmt : {"smi", "can", "mol", "sdf"})
    if (!OBConversion::FindFormat(fmt))
      throw Error(std::string("Open Babel: format '") + fmt + "' not found (is BABEL_LIBDIR set correctly?)");
  g_have_inchi = OBConversion::FindFormat("inchikey") != nullptr;
  // One molecule through every lazily initialised table: aromaticity, atom typing, rings, stereo, symmetry,
  // the SMILES and InChI writers, and the MMFF94/UFF typers the conformer code uses.
  OBMol mol;
  conv.SetInFormat("smi");
  conv.ReadString(&mol, "OC(=O)c1ccc(cc1)[C@@H](N)C/C=C/Cl");
  mol.AddHydrogens();
  FOR_ATOMS_OF_MOL(a, mol) {
    (void)a->GetHyb();
    (void)a->IsAromatic();
    (void)a->IsInRing();
  }
  std::vector<unsigned int> classes;
  OpenBabel::OBGraphSym(&mol).GetSymmetry(classes);
  OpenBabel::OBStereoFacade facade(&mol);
  (void)facade.GetAllTetrahedralStereo();
  (void)write_format(mol, "can");
  if (g_have_inchi) (void)write_format(mol, "inchikey");
  for (const char* name : {"MMFF94", "UFF"}) {
    OpenBabel::OBForceField* proto = OpenBabel::OBForceField::FindForceField(name);
    if (!proto) continue;
    OpenBabel::OBForceField* ff = proto->MakeNewInstance();
    if (ff) {
      // A fresh instance's log level and stream are not initialised: silence it before Setup writes to them.
      static std::ostringstream sink;
      ff->SetLogFile(&sink);
      ff->SetLogLevel(OBFF_LOGLVL_NONE);
      ff->Setup(mol);
      delete ff;
    }
  }
}

}  // namespace

// ---- message capture (chem/ob_util.h) ----------------------------------------------------------------------

namespace ob {

std::recursive_mutex& log_mutex() {
  static std::recursive_mutex m;
  return m;
}

bool message_capture_enabled() { return g_capture_messages.load(); }

namespace {
thread_local int t_capture_depth = 0;
}

std::string clean_message(const std::string& formatted) {
  std::istringstream in(formatted);
  std::string line, method, text;
  while (std::getline(in, line)) {
    std::string t = trim_copy(line);
    if (t.empty() || t.find_first_not_of('=') == std::string::npos) continue;
    if (t.rfind("*** Open Babel", 0) == 0) {
      const size_t in_pos = t.find(" in ");
      if (in_pos != std::string::npos) method = trim_copy(std::string_view(t).substr(in_pos + 4));
      continue;
    }
    if (!text.empty()) text += ' ';
    text += t;
  }
  return method.empty() ? text : method + ": " + text;
}

ObMessageCapture::ObMessageCapture() : lock_(log_mutex()) {
  outermost_ = t_capture_depth++ == 0;
  capturing_ = message_capture_enabled();
  if (outermost_ && capturing_) {
    obErrorLog.ClearLog();
    obErrorLog.StartLogging();
  }
}

ObMessageCapture::~ObMessageCapture() {
  --t_capture_depth;
  if (outermost_ && capturing_) {
    obErrorLog.StopLogging();
    obErrorLog.ClearLog();
  }
}

std::vector<std::string> ObMessageCapture::messages() const {
  std::vector<std::string> out;
  if (!capturing_) return out;
  for (auto level : {OpenBabel::obError, OpenBabel::obWarning})
    for (const auto& m : obErrorLog.GetMessagesOfLevel(level)) {
      std::string c = clean_message(m);
      if (!c.empty() && std::find(out.begin(), out.end(), c) == out.end()) out.push_back(std::move(c));
    }
  return out;
}

bool ObMessageCapture::contains(const std::string& needle) const {
  for (const auto& m : messages())
    if (m.find(needle) != std::string::npos) return true;
  return false;
}

std::string ObMessageCapture::suffix() const {
  const auto msgs = messages();
  if (msgs.empty()) return "";
  std::string s = " (Open Babel: ";
  for (size_t i = 0; i < msgs.size(); ++i) s += (i ? "; " : "") + msgs[i];
  return s + ")";
}

}  // namespace ob

// ---- public entry points -------------------------------------------------------------------------------

void init_openbabel() {
  std::call_once(g_init_once, [] {
    std::lock_guard<std::recursive_mutex> lock(ob::log_mutex());
    obErrorLog.StopLogging();
    obErrorLog.SetOutputStream(&null_stream());
    obErrorLog.SetOutputLevel(OpenBabel::obError);
    obErrorLog.SetMaxLogEntries(2000);
    obErrorLog.ClearLog();
    warm_up();
    obErrorLog.StopLogging();
    obErrorLog.ClearLog();
  });
}

void set_openbabel_message_capture(bool on) { g_capture_messages.store(on); }

Molecule molecule_from_smiles(const std::string& smiles, const std::string& id) {
  init_openbabel();
  try {
    return smiles_to_molecule(smiles, id);
  } catch (const Reject& r) {
    throw Error(id + ": " + r.reason);
  }
}

Molecule molecule_from_molblock(const std::string& molblock, const std::string& id) {
  init_openbabel();
  try {
    return molblock_to_molecule(molblock, id);
  } catch (const Reject& r) {
    throw Error(id + ": " + r.reason);
  }
}

// ---- MoleculeReader ----------------------------------------------------------------------------------------

struct MoleculeReader::State {
  TextReader in;
  std::string source;
  MoleculeFormat format = MoleculeFormat::Auto;
  std::deque<std::pair<std::string, int64_t>> pending;  // lines read ahead while sniffing the format
  int64_t records = 0;
  bool done = false;

  explicit State(TextReader reader) : in(std::move(reader)) {}

  // Next line and its 1-based number; false at end. Throws larmor::Error on a broken compressed stream.
  bool line(std::string& text, int64_t& number) {
    if (!pending.empty()) {
      text = std::move(pending.front().first);
      number = pending.front().second;
      pending.pop_front();
      return true;
    }
    if (!in.next_line(text)) return false;
    number = in.line_number();
    return true;
  }

  void detect_format(MoleculeFormat requested) {
    if (requested != MoleculeFormat::Auto) {
      format = requested;
      return;
    }
    std::string name = source;
    for (const char* z : {".gz", ".xz", ".GZ", ".XZ"}) {
      const std::string zs = z;
      if (name.size() > zs.size() && name.compare(name.size() - zs.size(), zs.size(), zs) == 0)
        name.resize(name.size() - zs.size());
    }
    const size_t dot = name.find_last_of('.');
    std::string ext = dot == std::string::npos ? "" : name.substr(dot + 1);
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == "sdf" || ext == "sd" || ext == "mol" || ext == "mdl") {
      format = MoleculeFormat::Sdf;
      return;
    }
    if (ext == "smi" || ext == "smiles" || ext == "can" || ext == "ism") {
      format = MoleculeFormat::Smiles;
      return;
    }
    // Sniff: a counts line with V2000/V3000 on line 4, or SD markers, in the first lines.
    format = MoleculeFormat::Smiles;
    std::string text;
    while (pending.size() < 8 && in.next_line(text)) pending.emplace_back(text, in.line_number());
    for (size_t i = 0; i < pending.size(); ++i) {
      const std::string& l = pending[i].first;
      if ((i == 3 && (l.find("V2000") != std::string::npos || l.find("V3000") != std::string::npos)) ||
          l.rfind("$$$$", 0) == 0 || l.rfind("M  END", 0) == 0) {
        format = MoleculeFormat::Sdf;
        return;
      }
    }
  }

  bool next_smiles(MoleculeRecord& rec) {
    std::string text;
    int64_t number = 0;
    while (line(text, number)) {
      const std::string t = trim_copy(text);
      if (t.empty() || t[0] == '#') continue;
      rec.number = ++records;
      rec.line = number;
      rec.id = source + ":" + std::to_string(number);
      const size_t space = t.find_first_of(" \t");
      rec.title = space == std::string::npos ? "" : trim_copy(std::string_view(t).substr(space));
      try {
        rec.molecule = smiles_to_molecule(t, rec.id);
      } catch (const Reject& r) {
        rec.error = source + ":" + std::to_string(number) + ": " + r.reason;
      }
      return true;
    }
    return false;
  }

  bool next_sdf(MoleculeRecord& rec) {
    std::vector<std::string> lines;
    std::string text;
    int64_t number = 0, first = 0;
    bool terminated = false;
    while (line(text, number)) {
      if (lines.empty() && first == 0) first = number;
      if (text.rfind("$$$$", 0) == 0) {
        terminated = true;
        break;
      }
      lines.push_back(std::move(text));
    }
    if (!terminated) {
      bool blank = true;
      for (const auto& l : lines)
        if (!trim(l).empty()) blank = false;
      if (blank) return false;
    }
    rec.number = ++records;
    rec.line = first;
    rec.id = source + ":" + std::to_string(rec.number);
    const std::string where =
        source + " record " + std::to_string(rec.number) + " (line " + std::to_string(first) + ")";
    rec.title = lines.empty() ? "" : trim_copy(lines[0]);
    size_t mend = lines.size();
    for (size_t i = 0; i < lines.size(); ++i)
      if (lines[i].rfind("M  END", 0) == 0) {
        mend = i;
        break;
      }
    // SD data items after the molblock: "> <name>" then value lines up to a blank line.
    for (size_t i = mend == lines.size() ? lines.size() : mend + 1; i < lines.size(); ++i) {
      const std::string& l = lines[i];
      if (l.empty() || l[0] != '>') continue;
      std::string name;
      const size_t lt = l.find('<'), gt = lt == std::string::npos ? std::string::npos : l.find('>', lt + 1);
      name = (lt != std::string::npos && gt != std::string::npos) ? l.substr(lt + 1, gt - lt - 1)
                                                                  : trim_copy(std::string_view(l).substr(1));
      std::string value;
      size_t j = i + 1;
      for (; j < lines.size() && !lines[j].empty(); ++j) {
        if (j > i + 1) value += '\n';
        value += lines[j];
      }
      auto [it, inserted] = rec.tags.emplace(name, value);
      if (!inserted) it->second += "\n" + value;  // repeated item: values joined
      i = j;
    }
    if (mend == lines.size()) {
      rec.error = where + ": no 'M  END' line (truncated or not a molblock)";
      return true;
    }
    std::string molblock;
    for (size_t i = 0; i <= mend; ++i) {
      molblock += lines[i];
      molblock += '\n';
    }
    try {
      Molecule m = molblock_to_molecule(molblock, rec.id);
      m.tags = rec.tags;
      rec.molecule = std::move(m);
    } catch (const Reject& r) {
      rec.error = where + ": " + r.reason;
    }
    return true;
  }
};

MoleculeReader::MoleculeReader(std::unique_ptr<State> state) : state_(std::move(state)) {}

MoleculeReader::MoleculeReader(const std::string& path, MoleculeFormat format) {
  init_openbabel();
  state_ = std::make_unique<State>(TextReader::open(path));
  state_->source = path == "-" ? "stdin" : path;
  state_->detect_format(format);
}

MoleculeReader MoleculeReader::from_string(std::string name, std::string text, MoleculeFormat format) {
  init_openbabel();
  auto state = std::make_unique<State>(TextReader::from_string(name, std::move(text)));
  state->source = std::move(name);
  state->detect_format(format);
  return MoleculeReader(std::move(state));
}

MoleculeReader MoleculeReader::from_stream(std::string name, std::istream& in, MoleculeFormat format) {
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return from_string(std::move(name), buffer.str(), format);
}

MoleculeReader::MoleculeReader(MoleculeReader&&) noexcept = default;
MoleculeReader& MoleculeReader::operator=(MoleculeReader&&) noexcept = default;
MoleculeReader::~MoleculeReader() = default;

MoleculeFormat MoleculeReader::format() const { return state_->format; }
const std::string& MoleculeReader::source() const { return state_->source; }

bool MoleculeReader::next(MoleculeRecord& record) {
  record = MoleculeRecord{};
  if (state_->done) return false;
  try {
    const bool got = state_->format == MoleculeFormat::Sdf ? state_->next_sdf(record) : state_->next_smiles(record);
    if (!got) state_->done = true;
    return got;
  } catch (const Error& e) {
    // The input itself broke (truncated/corrupt compressed stream, I/O error): report it once and stop.
    state_->done = true;
    record = MoleculeRecord{};
    record.number = ++state_->records;
    record.line = state_->in.line_number();
    record.id = state_->source + ":" + std::to_string(record.number);
    record.error = std::string(e.what()) + " (reading stopped at line " + std::to_string(record.line) + ")";
    return true;
  }
}

}  // namespace larmor::chem
