// Featurisation of a chem::Molecule for the Uni-Mol-style and K-M3AID-style models (see features.h for the
// layout and why the stereo columns are expressed against invariant ranks). Plain loops over atoms and
// bonds: molecules have at most a few hundred atoms, and this runs once per molecule when a dataset is built.
#include "chem/features.h"

#include <algorithm>
#include <climits>
#include <string>

#include "engine/error.h"

namespace larmor::chem {

namespace {

struct Neighbour {
  int atom;
  int bond;
};

std::vector<std::vector<Neighbour>> adjacency_of(const Molecule& mol) {
  const int n = mol.num_atoms();
  std::vector<std::vector<Neighbour>> adj(n);
  for (int k = 0; k < static_cast<int>(mol.bonds.size()); ++k) {
    const Bond& b = mol.bonds[k];
    if (b.a < 0 || b.a >= n || b.b < 0 || b.b >= n || b.a == b.b)
      throw Error("featurize: molecule '" + mol.id + "': bond " + std::to_string(k) + " joins atoms " +
                  std::to_string(b.a) + " and " + std::to_string(b.b) + " of " + std::to_string(n));
    adj[b.a].push_back({b.b, k});
    adj[b.b].push_back({b.a, k});
  }
  return adj;
}

// Dense ranks of keys in sorted key order.
std::vector<int32_t> dense_ranks(const std::vector<std::vector<int64_t>>& keys) {
  std::vector<std::vector<int64_t>> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::vector<int32_t> ranks(keys.size());
  for (size_t i = 0; i < keys.size(); ++i)
    ranks[i] = static_cast<int32_t>(std::lower_bound(sorted.begin(), sorted.end(), keys[i]) - sorted.begin());
  return ranks;
}

int count_distinct(const std::vector<int32_t>& ranks) {
  std::vector<int32_t> r = ranks;
  std::sort(r.begin(), r.end());
  return static_cast<int>(std::unique(r.begin(), r.end()) - r.begin());
}

std::vector<int32_t> refine_ranks(const Molecule& mol, const std::vector<std::vector<Neighbour>>& adj) {
  const int n = mol.num_atoms();
  std::vector<std::vector<int64_t>> keys(n);
  for (int i = 0; i < n; ++i) {
    const Atom& a = mol.atoms[i];
    keys[i] = {a.element, a.formal_charge, a.aromatic, a.in_ring, a.degree, a.num_h};
  }
  std::vector<int32_t> ranks = dense_ranks(keys);
  int classes = count_distinct(ranks);
  for (int iter = 0; iter < n; ++iter) {
    for (int i = 0; i < n; ++i) {
      std::vector<int64_t> around;
      for (const auto& nb : adj[i])
        around.push_back(int64_t{ranks[nb.atom]} * 8 + static_cast<int>(mol.bonds[nb.bond].type));
      std::sort(around.begin(), around.end());
      keys[i].assign(1, ranks[i]);
      keys[i].insert(keys[i].end(), around.begin(), around.end());
    }
    std::vector<int32_t> next = dense_ranks(keys);
    const int next_classes = count_distinct(next);
    ranks = std::move(next);
    if (next_classes == classes) break;
    classes = next_classes;
  }
  return ranks;
}

int32_t hybridization_index(Hybridization h) {
  switch (h) {
    case Hybridization::SP: return 1;
    case Hybridization::SP2: return 2;
    case Hybridization::SP3: return 3;
    case Hybridization::SP3D: return 4;
    case Hybridization::SP3D2: return 5;
    default: return 0;  // S (hydrogen) and other
  }
}

// chem/molecule.h stores chirality against atom indices; re-express it against ranks (features.h).
int32_t chirality_index(const Molecule& mol, int centre, const std::vector<std::vector<Neighbour>>& adj,
                        const std::vector<int32_t>& ranks) {
  const Chirality ch = mol.atoms[centre].chirality;
  if (ch != Chirality::Clockwise && ch != Chirality::CounterClockwise) return 0;
  const auto& nbs = adj[centre];
  if (nbs.size() != 3 && nbs.size() != 4) return 0;
  constexpr long kLonePair = LONG_MAX;  // index key of a lone pair: highest index, lowest rank
  std::vector<long> ligands;
  int hydrogens = 0;
  long h_atom = -1;
  for (const auto& nb : nbs) {
    ligands.push_back(nb.atom);
    if (mol.atoms[nb.atom].element == 1) {
      ++hydrogens;
      h_atom = nb.atom;
    }
  }
  if (nbs.size() == 3) ligands.push_back(kLonePair);
  if (hydrogens > 1) return 0;
  const long view = hydrogens == 1 ? h_atom : *std::max_element(ligands.begin(), ligands.end());
  std::vector<long> by_index{view};
  std::vector<long> others;
  for (long l : ligands)
    if (l != view) others.push_back(l);
  std::sort(others.begin(), others.end());
  by_index.insert(by_index.end(), others.begin(), others.end());

  auto rank_of = [&](long l) -> long { return l == kLonePair ? -1 : ranks[l]; };
  std::vector<long> by_rank = ligands;
  std::sort(by_rank.begin(), by_rank.end(), [&](long x, long y) { return rank_of(x) < rank_of(y); });
  for (size_t i = 1; i < by_rank.size(); ++i)
    if (rank_of(by_rank[i]) == rank_of(by_rank[i - 1])) return 0;  // ligands not distinguishable

  // "Looking towards list[0], list[1..3] run clockwise" flips with every transposition of the list.
  std::vector<int> position(4);
  for (int k = 0; k < 4; ++k)
    position[k] = static_cast<int>(std::find(by_index.begin(), by_index.end(), by_rank[k]) - by_index.begin());
  int inversions = 0;
  for (int p = 0; p < 4; ++p)
    for (int q = p + 1; q < 4; ++q)
      if (position[p] > position[q]) ++inversions;
  const bool clockwise = (ch == Chirality::Clockwise) != (inversions % 2 == 1);
  return clockwise ? 1 : 2;
}

BondStereo flipped(BondStereo s) { return s == BondStereo::Up ? BondStereo::Down : BondStereo::Up; }
// SMILES-style symbol of a flagged bond read in the orientation from -> other end.
BondStereo read_from(const Bond& b, int from) { return b.a == from ? b.stereo : flipped(b.stereo); }

// Direction column of double bond k (features.h): 1 trans, 2 cis, 0 none.
int32_t direction_index(const Molecule& mol, int k, const std::vector<std::vector<Neighbour>>& adj,
                        const std::vector<int32_t>& ranks) {
  const Bond& db = mol.bonds[k];
  if (db.type != BondType::Double) return 0;
  const int b = db.a, e = db.b;
  auto substituents = [&](int centre, int partner) {
    std::vector<Neighbour> subs;
    for (const auto& nb : adj[centre])
      if (nb.atom != partner) subs.push_back(nb);
    return subs;
  };
  const auto left = substituents(b, e), right = substituents(e, b);
  if (left.empty() || right.empty() || left.size() > 2 || right.size() > 2) return 0;
  auto flagged = [&](const std::vector<Neighbour>& subs) -> const Neighbour* {
    for (const auto& s : subs)
      if (mol.bonds[s.bond].type == BondType::Single && mol.bonds[s.bond].stereo != BondStereo::None) return &s;
    return nullptr;
  };
  const Neighbour* x = flagged(left);
  const Neighbour* y = flagged(right);
  if (!x || !y) return 0;
  // Equal symbols in the orientations x->b and e->y mean x and y are trans.
  bool trans = read_from(mol.bonds[x->bond], x->atom) == read_from(mol.bonds[y->bond], e);
  auto lowest = [&](const std::vector<Neighbour>& subs) -> int {
    if (subs.size() == 2 && ranks[subs[0].atom] == ranks[subs[1].atom]) return -1;
    return ranks[subs[0].atom] <= (subs.size() == 2 ? ranks[subs[1].atom] : INT_MAX) ? subs[0].atom : subs[1].atom;
  };
  const int xl = lowest(left), yl = lowest(right);
  if (xl < 0 || yl < 0) return 0;
  if (xl != x->atom) trans = !trans;
  if (yl != y->atom) trans = !trans;
  return trans ? 1 : 2;
}

}  // namespace

const std::vector<std::string>& unimol_vocabulary() {
  static const std::vector<std::string> vocab = {"[PAD]", "[CLS]", "[SEP]", "[UNK]", "C",  "N",  "O",  "S",
                                                 "H",     "Cl",    "F",     "Br",    "I",  "Si", "P",  "B",
                                                 "Na",    "K",     "Al",    "Ca",    "Sn", "As", "Hg", "Fe",
                                                 "Zn",    "Cr",    "Se",    "Gd",    "Au", "Li", "[MASK]"};
  return vocab;
}

int32_t unimol_token(int atomic_number) {
  static const std::vector<int32_t> table = [] {
    std::vector<int32_t> t(119, kTokenUnk);
    const auto& vocab = unimol_vocabulary();
    for (int z = 1; z <= 118; ++z)
      for (int32_t id = kTokenUnk + 1; id < kTokenMask; ++id)
        if (vocab[id] == element_symbol(z)) t[z] = id;
    return t;
  }();
  if (atomic_number < 1 || atomic_number > 118) return kTokenUnk;
  return table[atomic_number];
}

std::vector<int32_t> invariant_ranks(const Molecule& mol) { return refine_ranks(mol, adjacency_of(mol)); }

MoleculeFeatures featurize(const Molecule& mol, const FeatureOptions& options) {
  const int n = mol.num_atoms();
  if (!mol.coords.empty() && static_cast<int>(mol.coords.size()) != n)
    throw Error("featurize: molecule '" + mol.id + "': " + std::to_string(mol.coords.size()) +
                " coordinates for " + std::to_string(n) + " atoms");
  const auto adj = adjacency_of(mol);
  MoleculeFeatures f;
  f.num_atoms = n;
  f.rank = refine_ranks(mol, adj);

  // ---- Uni-Mol tokens and centred coordinates ----
  f.atom_tokens.resize(n);
  for (int i = 0; i < n; ++i) f.atom_tokens[i] = unimol_token(mol.atoms[i].element);
  f.tokens.reserve(n + 2);
  f.tokens.push_back(kTokenCls);
  f.tokens.insert(f.tokens.end(), f.atom_tokens.begin(), f.atom_tokens.end());
  f.tokens.push_back(kTokenSep);
  if (mol.has_3d() && n > 0) {
    double mean[3] = {0, 0, 0};
    for (const auto& c : mol.coords)
      for (int d = 0; d < 3; ++d) mean[d] += c[d];
    for (double& m : mean) m /= n;
    f.coords.assign(static_cast<size_t>(n + 2) * 3, 0.0f);
    for (int i = 0; i < n; ++i)
      for (int d = 0; d < 3; ++d) f.coords[(i + 1) * 3 + d] = static_cast<float>(mol.coords[i][d] - mean[d]);
  }

  // ---- shift-model chemistry inputs: atom feature rows and bond-graph pair types ----
  f.token_features.assign(static_cast<size_t>(n + 2) * kShiftAtomFeatures, 0);
  for (int t = 0; t < n + 2; ++t)
    for (int k = 0; k < kShiftAtomFeatures; ++k) f.token_features[t * kShiftAtomFeatures + k] = kShiftAtomFeatureOffsets[k];
  for (int i = 0; i < n; ++i) {
    const Atom& a = mol.atoms[i];
    const int32_t values[kShiftAtomFeatures] = {hybridization_index(a.hybridization), a.aromatic ? 1 : 0, a.in_ring ? 1 : 0,
                                                std::min<int32_t>(a.num_h, 4), std::clamp<int32_t>(a.formal_charge, -2, 2) + 2};
    for (int k = 0; k < kShiftAtomFeatures; ++k)
      f.token_features[(i + 1) * kShiftAtomFeatures + k] = kShiftAtomFeatureOffsets[k] + 1 + values[k];
  }
  f.token_pairs.assign(static_cast<size_t>(n + 2) * (n + 2), 0);
  {
    std::vector<int32_t> hops(n);
    std::vector<int32_t> queue(n);
    for (int s = 0; s < n; ++s) {  // breadth-first search from every atom, up to kShiftPairMaxPath bonds
      std::fill(hops.begin(), hops.end(), -1);
      hops[s] = 0;
      int head = 0, tail = 0;
      queue[tail++] = s;
      while (head < tail) {
        const int u = queue[head++];
        if (hops[u] == kShiftPairMaxPath) continue;
        for (const auto& nb : adj[u])
          if (hops[nb.atom] < 0) {
            hops[nb.atom] = hops[u] + 1;
            queue[tail++] = nb.atom;
          }
      }
      uint8_t* row = &f.token_pairs[static_cast<size_t>(s + 1) * (n + 2) + 1];
      for (int t = 0; t < n; ++t)
        row[t] = static_cast<uint8_t>(hops[t] < 0 ? kShiftPairTypes - 1 : hops[t] == 0 ? 1 : 4 + hops[t]);
      for (const auto& nb : adj[s]) row[nb.atom] = static_cast<uint8_t>(2 + static_cast<int>(mol.bonds[nb.bond].type));
    }
  }

  // ---- graph nodes ----
  f.atom_node.assign(n, -1);
  for (int i = 0; i < n; ++i) {
    if (!options.graph_hydrogens && mol.atoms[i].element == 1) continue;
    f.atom_node[i] = static_cast<int32_t>(f.node_atom.size());
    f.node_atom.push_back(i);
  }
  f.num_nodes = static_cast<int32_t>(f.node_atom.size());
  f.node_features.reserve(f.num_nodes * 3);
  f.node_extra.reserve(f.num_nodes * 5);
  for (int v = 0; v < f.num_nodes; ++v) {
    const int i = f.node_atom[v];
    const Atom& a = mol.atoms[i];
    int graph_degree = 0;
    for (const auto& nb : adj[i])
      if (f.atom_node[nb.atom] >= 0) ++graph_degree;
    f.node_features.push_back(std::clamp<int32_t>(a.element - 1, 0, kNumAtomTypes - 1));
    f.node_features.push_back(chirality_index(mol, i, adj, f.rank));
    f.node_features.push_back(hybridization_index(a.hybridization));
    f.node_extra.push_back(a.aromatic ? 1 : 0);
    f.node_extra.push_back(std::clamp<int32_t>(a.formal_charge + 5, 0, kNumFormalCharges - 1));
    f.node_extra.push_back(std::min<int32_t>(graph_degree, kNumDegrees - 1));
    f.node_extra.push_back(std::min<int32_t>(a.num_h, kNumHydrogenCounts - 1));
    f.node_extra.push_back(a.in_ring ? 1 : 0);
  }

  // ---- graph edges: both directions per bond, bond order ----
  std::vector<int32_t> sources, targets;
  for (int k = 0; k < static_cast<int>(mol.bonds.size()); ++k) {
    const Bond& b = mol.bonds[k];
    const int va = f.atom_node[b.a], vb = f.atom_node[b.b];
    if (va < 0 || vb < 0) continue;
    const int32_t type = static_cast<int32_t>(b.type);
    const int32_t dir = direction_index(mol, k, adj, f.rank);
    sources.push_back(va);
    targets.push_back(vb);
    sources.push_back(vb);
    targets.push_back(va);
    for (int rep = 0; rep < 2; ++rep) {
      f.edge_features.push_back(type);
      f.edge_features.push_back(dir);
      f.edge_bond.push_back(k);
    }
  }
  f.num_edges = static_cast<int32_t>(sources.size());
  f.edge_index = std::move(sources);
  f.edge_index.insert(f.edge_index.end(), targets.begin(), targets.end());

  // ---- per atom ----
  f.heavy_atom.resize(n);
  f.symmetry_class.resize(n);
  for (int i = 0; i < n; ++i) {
    f.heavy_atom[i] = mol.atoms[i].heavy >= 0 ? mol.atoms[i].heavy : i;
    f.symmetry_class[i] = mol.atoms[i].symmetry_class;
  }
  return f;
}

}  // namespace larmor::chem
