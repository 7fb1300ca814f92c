// Featurisation without Open Babel (chem/features): molecules built by hand, so these run on the GPU machine
// too. Token vocabulary and mapping, the [CLS] atoms [SEP] layout, coordinate centring, the Hu et al. graph
// columns, both edge directions, heavy-only graphs, invariant ranks, and stereo columns that do not change
// when the same stereo molecule is written with its atoms in another order.
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <tuple>

#include "chem/features.h"
#include "engine/error.h"

using namespace larmor;
using namespace larmor::chem;

namespace {

Atom atom(int z, int num_h = 0, int degree = 0) {
  Atom a;
  a.element = static_cast<uint8_t>(z);
  a.num_h = static_cast<uint8_t>(num_h);
  a.degree = static_cast<uint8_t>(degree);
  a.hybridization = z == 1 ? Hybridization::S : Hybridization::SP3;
  return a;
}

// Methanol with explicit H: C0 O1 H2 H3 H4 (on C) H5 (on O).
Molecule methanol() {
  Molecule m;
  m.id = "methanol";
  m.atoms = {atom(6, 3, 4), atom(8, 1, 2), atom(1, 0, 1), atom(1, 0, 1), atom(1, 0, 1), atom(1, 0, 1)};
  m.atoms[0].heavy = 0;
  m.atoms[1].heavy = 1;
  for (int i : {2, 3, 4}) m.atoms[i].heavy = 0;
  m.atoms[5].heavy = 1;
  m.bonds = {{0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 5}};
  const int32_t sym[] = {0, 1, 2, 2, 2, 3};
  for (int i = 0; i < 6; ++i) m.atoms[i].symmetry_class = sym[i];
  return m;
}

// The same molecule with atom i moved to position p[i] (bond endpoints and flags follow their atoms).
Molecule permuted(const Molecule& m, const std::vector<int>& p) {
  Molecule out = m;
  for (int i = 0; i < m.num_atoms(); ++i) {
    out.atoms[p[i]] = m.atoms[i];
    out.atoms[p[i]].heavy = m.atoms[i].heavy >= 0 ? p[m.atoms[i].heavy] : -1;
    if (!m.coords.empty()) out.coords[p[i]] = m.coords[i];
  }
  for (auto& b : out.bonds) {
    b.a = p[b.a];
    b.b = p[b.b];
  }
  return out;
}

// CHFClBr with every H explicit, C0 F1 Cl2 Br3 H4, chirality as given.
Molecule chfclbr(Chirality c) {
  Molecule m;
  m.id = "chfclbr";
  m.atoms = {atom(6, 1, 4), atom(9, 0, 1), atom(17, 0, 1), atom(35, 0, 1), atom(1, 0, 1)};
  for (int i = 0; i < 4; ++i) m.atoms[i].heavy = i;
  m.atoms[4].heavy = 0;
  m.atoms[0].chirality = c;
  m.bonds = {{0, 1}, {0, 2}, {0, 3}, {0, 4}};
  return m;
}

// Re-expresses a chirality after relabelling atoms with p, in the index convention of molecule.h, so that
// the permuted molecule describes the same 3D arrangement. `centre` is an old index.
Chirality relabel_chirality(const Molecule& m, int centre, const std::vector<int>& p) {
  std::vector<int> nbs;
  for (const auto& b : m.bonds) {
    if (b.a == centre) nbs.push_back(b.b);
    if (b.b == centre) nbs.push_back(b.a);
  }
  auto ordered = [&](auto key) {  // (view, others by key) with view = the H, else the highest key
    int view = -1;
    for (int nb : nbs)
      if (m.atoms[nb].element == 1) view = nb;
    if (view < 0) view = *std::max_element(nbs.begin(), nbs.end(), [&](int x, int y) { return key(x) < key(y); });
    std::vector<int> rest;
    for (int nb : nbs)
      if (nb != view) rest.push_back(nb);
    std::sort(rest.begin(), rest.end(), [&](int x, int y) { return key(x) < key(y); });
    rest.insert(rest.begin(), view);
    return rest;
  };
  const auto before = ordered([](int x) { return x; });
  const auto after = ordered([&](int x) { return p[x]; });
  int inversions = 0;
  for (int i = 0; i < 4; ++i)
    for (int j = i + 1; j < 4; ++j) {
      const long pi = std::find(before.begin(), before.end(), after[i]) - before.begin();
      const long pj = std::find(before.begin(), before.end(), after[j]) - before.begin();
      if (pi > pj) ++inversions;
    }
  const Chirality c = m.atoms[centre].chirality;
  if (inversions % 2 == 0) return c;
  return c == Chirality::Clockwise ? Chirality::CounterClockwise : Chirality::Clockwise;
}

}  // namespace

TEST_CASE("features: Uni-Mol vocabulary and token mapping") {
  const auto& vocab = unimol_vocabulary();
  REQUIRE(vocab.size() == static_cast<size_t>(kUniMolVocabSize));
  const std::vector<std::string> expected = {"[PAD]", "[CLS]", "[SEP]", "[UNK]", "C",  "N",  "O",  "S",  "H",  "Cl", "F",
                                             "Br",    "I",     "Si",    "P",     "B",  "Na", "K",  "Al", "Ca", "Sn", "As",
                                             "Hg",    "Fe",    "Zn",    "Cr",    "Se", "Gd", "Au", "Li", "[MASK]"};
  CHECK(vocab == expected);
  CHECK(vocab[kTokenPad] == "[PAD]");
  CHECK(vocab[kTokenCls] == "[CLS]");
  CHECK(vocab[kTokenSep] == "[SEP]");
  CHECK(vocab[kTokenUnk] == "[UNK]");
  CHECK(vocab[kTokenMask] == "[MASK]");
  CHECK(unimol_token(6) == 4);
  CHECK(unimol_token(1) == 8);
  CHECK(unimol_token(17) == 9);
  CHECK(unimol_token(3) == 29);   // Li
  CHECK(unimol_token(79) == 28);  // Au
  CHECK(unimol_token(2) == kTokenUnk);   // He
  CHECK(unimol_token(78) == kTokenUnk);  // Pt
  CHECK(unimol_token(0) == kTokenUnk);
  CHECK(unimol_token(200) == kTokenUnk);
  for (int z = 1; z <= 118; ++z) {
    const int32_t t = unimol_token(z);
    if (t != kTokenUnk) CHECK(vocab[t] == element_symbol(z));
  }
}

TEST_CASE("features: [CLS] atoms [SEP] layout and centred coordinates") {
  Molecule m = methanol();
  SUBCASE("no coordinates") {
    const auto f = featurize(m);
    CHECK(f.atom_tokens == std::vector<int32_t>{4, 6, 8, 8, 8, 8});
    CHECK(f.tokens == std::vector<int32_t>{kTokenCls, 4, 6, 8, 8, 8, 8, kTokenSep});
    CHECK(f.coords.empty());
  }
  SUBCASE("coordinates centred on the atoms' mean, [CLS]/[SEP] at the origin") {
    m.coords = {{1, 2, 3}, {2, 2, 3}, {0, 2, 3}, {1, 3, 3}, {1, 1, 3}, {3, 2, 9}};
    const auto f = featurize(m);
    REQUIRE(f.coords.size() == 8 * 3);
    const float mean[3] = {8.0f / 6, 12.0f / 6, 24.0f / 6};
    for (int d = 0; d < 3; ++d) {
      CHECK(f.coords[d] == 0.0f);
      CHECK(f.coords[7 * 3 + d] == 0.0f);
      double sum = 0;
      for (int i = 0; i < 6; ++i) {
        CHECK(f.coords[(i + 1) * 3 + d] == doctest::Approx(m.coords[i][d] - mean[d]));
        sum += f.coords[(i + 1) * 3 + d];
      }
      CHECK(sum == doctest::Approx(0.0).epsilon(1e-6));
    }
  }
  SUBCASE("inconsistent input is an error naming the molecule") {
    m.coords = {{0, 0, 0}};
    CHECK_THROWS_WITH_AS(featurize(m), doctest::Contains("methanol"), Error);
    m.coords.clear();
    m.bonds.push_back({0, 9});
    CHECK_THROWS_WITH_AS(featurize(m), doctest::Contains("bond 5"), Error);
  }
}

TEST_CASE("features: graph columns and both edge directions") {
  Molecule m = methanol();
  m.atoms[1].formal_charge = 0;
  m.atoms[0].in_ring = false;
  const auto f = featurize(m);
  CHECK(f.num_nodes == 6);
  CHECK(f.num_edges == 10);
  CHECK(f.node_atom == std::vector<int32_t>{0, 1, 2, 3, 4, 5});
  // node 0: carbon = atomic number 6 - 1 = 5, no chirality, sp3 -> 3
  CHECK(f.node_features[0] == 5);
  CHECK(f.node_features[1] == 0);
  CHECK(f.node_features[2] == 3);
  CHECK(f.node_features[2 * 3 + 0] == 0);  // H
  CHECK(f.node_features[2 * 3 + 2] == 0);  // S
  // extra: aromatic, charge+5, degree, H count, ring
  CHECK(std::vector<int32_t>(f.node_extra.begin(), f.node_extra.begin() + 5) == std::vector<int32_t>{0, 5, 4, 3, 0});
  CHECK(std::vector<int32_t>(f.node_extra.begin() + 5, f.node_extra.begin() + 10) == std::vector<int32_t>{0, 5, 2, 1, 0});
  // Edge 2k is bond k as written, 2k+1 reversed.
  for (int k = 0; k < 5; ++k) {
    CHECK(f.edge_index[2 * k] == m.bonds[k].a);
    CHECK(f.edge_index[f.num_edges + 2 * k] == m.bonds[k].b);
    CHECK(f.edge_index[2 * k + 1] == m.bonds[k].b);
    CHECK(f.edge_index[f.num_edges + 2 * k + 1] == m.bonds[k].a);
    CHECK(f.edge_bond[2 * k] == k);
    CHECK(f.edge_bond[2 * k + 1] == k);
  }
  for (int e = 0; e < f.num_edges; ++e) {
    CHECK(f.edge_index[e] != f.edge_index[f.num_edges + e]);  // no self loops
    CHECK(f.edge_features[e * 2] == 0);
    CHECK(f.edge_features[e * 2 + 1] == 0);
  }
  CHECK(f.heavy_atom == std::vector<int32_t>{0, 1, 0, 0, 0, 1});
  CHECK(f.symmetry_class == std::vector<int32_t>{0, 1, 2, 2, 2, 3});
  // Ranks: the three methyl H tie, everything else differs.
  CHECK(f.rank[2] == f.rank[3]);
  CHECK(f.rank[3] == f.rank[4]);
  CHECK(std::set<int32_t>{f.rank[0], f.rank[1], f.rank[2], f.rank[5]}.size() == 4);
}

TEST_CASE("features: heavy-atom graph, charges and clamping") {
  Molecule m = methanol();
  m.atoms[1].formal_charge = -9;  // clamped to -5 -> 0
  m.atoms[0].aromatic = true;
  m.atoms[0].in_ring = true;
  m.bonds[0].type = BondType::Aromatic;
  FeatureOptions opt;
  opt.graph_hydrogens = false;
  const auto f = featurize(m, opt);
  CHECK(f.num_nodes == 2);
  CHECK(f.num_edges == 2);
  CHECK(f.node_atom == std::vector<int32_t>{0, 1});
  CHECK(f.atom_node == std::vector<int32_t>{0, 1, -1, -1, -1, -1});
  CHECK(f.edge_index == std::vector<int32_t>{0, 1, 1, 0});
  CHECK(f.edge_features == std::vector<int32_t>{3, 0, 3, 0});
  CHECK(std::vector<int32_t>(f.node_extra.begin(), f.node_extra.begin() + 5) == std::vector<int32_t>{1, 5, 1, 3, 1});
  CHECK(f.node_extra[5 + 1] == 0);
  CHECK(f.node_extra[5 + 2] == 1);  // degree within the heavy graph
  CHECK(f.node_extra[5 + 3] == 1);  // the O-H still counted
  CHECK(f.tokens.size() == 8);      // Uni-Mol keeps every atom
}

TEST_CASE("features: chirality column follows the 3D arrangement, not the atom order") {
  for (Chirality c : {Chirality::Clockwise, Chirality::CounterClockwise}) {
    const Molecule a = chfclbr(c);
    const int32_t tag = featurize(a).node_features[1];
    CHECK((tag == 1 || tag == 2));
    std::vector<int> p{0, 1, 2, 3, 4};
    do {
      Molecule b = permuted(a, p);
      b.atoms[p[0]].chirality = relabel_chirality(a, 0, p);
      const auto fb = featurize(b);
      CHECK(fb.node_features[p[0] * 3 + 1] == tag);
    } while (std::next_permutation(p.begin(), p.end()));
  }
  CHECK(featurize(chfclbr(Chirality::Clockwise)).node_features[1] !=
        featurize(chfclbr(Chirality::CounterClockwise)).node_features[1]);
  CHECK(featurize(chfclbr(Chirality::Unspecified)).node_features[1] == 0);
  // A "centre" with two equivalent ligands is no stereocentre.
  Molecule ch2 = chfclbr(Chirality::Clockwise);
  ch2.atoms[3] = ch2.atoms[2];
  CHECK(featurize(ch2).node_features[1] == 0);
}

TEST_CASE("features: cis/trans direction column from SMILES-style flags") {
  // F0-C1=C2-F3 with H4 on C1 and H5 on C2. Trans: "F/C=C/F" -> bond 0->1 Up, bond 2->3 Up.
  auto difluoroethene = [](BondStereo left, BondStereo right) {
    Molecule m;
    m.id = "dfe";
    m.atoms = {atom(9, 0, 1), atom(6, 1, 3), atom(6, 1, 3), atom(9, 0, 1), atom(1, 0, 1), atom(1, 0, 1)};
    m.atoms[4].heavy = 1;
    m.atoms[5].heavy = 2;
    for (int i = 0; i < 4; ++i) m.atoms[i].heavy = i;
    m.bonds = {{0, 1}, {1, 2, BondType::Double}, {2, 3}, {1, 4}, {2, 5}};
    m.bonds[0].stereo = left;
    m.bonds[2].stereo = right;
    return m;
  };
  auto direction = [](const Molecule& m) {
    const auto f = featurize(m);
    int dir = -1;
    for (int e = 0; e < f.num_edges; ++e) {
      if (f.edge_features[e * 2] == 1) {
        if (dir >= 0) CHECK(f.edge_features[e * 2 + 1] == dir);  // both directions agree
        dir = f.edge_features[e * 2 + 1];
      } else {
        CHECK(f.edge_features[e * 2 + 1] == 0);
      }
    }
    return dir;
  };
  const Molecule trans = difluoroethene(BondStereo::Up, BondStereo::Up);
  const Molecule cis = difluoroethene(BondStereo::Up, BondStereo::Down);
  CHECK(direction(trans) == 1);
  CHECK(direction(cis) == 2);
  CHECK(direction(difluoroethene(BondStereo::Down, BondStereo::Down)) == 1);
  CHECK(direction(difluoroethene(BondStereo::None, BondStereo::Up)) == 0);
  // Written the other way round ("F\C=C\F" with the F-C bond stored C->F) is still trans.
  Molecule reversed = trans;
  std::swap(reversed.bonds[0].a, reversed.bonds[0].b);
  reversed.bonds[0].stereo = BondStereo::Down;
  CHECK(direction(reversed) == 1);
  // Flags on the H side instead of the F side describe the same molecule.
  Molecule via_h = difluoroethene(BondStereo::None, BondStereo::None);
  via_h.bonds[3].stereo = BondStereo::Up;   // 1->4 : "C/H"  i.e. H\C from the H side
  via_h.bonds[4].stereo = BondStereo::Up;   // 2->5 : "C/H"
  // x=H4 read H->C1 is Down, y=H5 read C2->H5 is Up: H's cis, so the F's are cis too.
  CHECK(direction(via_h) == 2);
  // Every atom order gives the same column.
  std::vector<int> p{0, 1, 2, 3, 4, 5};
  int perms = 0;
  do {
    CHECK(direction(permuted(trans, p)) == 1);
    CHECK(direction(permuted(cis, p)) == 2);
    ++perms;
  } while (std::next_permutation(p.begin(), p.end()) && perms < 200);
}

TEST_CASE("features: invariant ranks are permutation invariant") {
  Molecule m;
  m.id = "ring";
  // cyclohexanol heavy atoms: O0 C1 C2 C3 C4 C5 C6 (ring C1..C6)
  m.atoms = {atom(8, 1, 1), atom(6, 1, 3), atom(6, 2, 2), atom(6, 2, 2), atom(6, 2, 2), atom(6, 2, 2), atom(6, 2, 2)};
  for (int i = 1; i < 7; ++i) m.atoms[i].in_ring = true;
  m.bonds = {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}, {6, 1}};
  const auto r = invariant_ranks(m);
  CHECK(r[2] == r[6]);
  CHECK(r[3] == r[5]);
  CHECK(std::set<int32_t>{r[0], r[1], r[2], r[3], r[4]}.size() == 5);
  std::vector<int> p{3, 6, 0, 5, 1, 2, 4};
  const auto rp = invariant_ranks(permuted(m, p));
  for (int i = 0; i < 7; ++i) CHECK(rp[p[i]] == r[i]);
}

TEST_CASE("features: shift-model atom feature rows and bond-graph pair types") {
  Molecule m = methanol();  // C0 O1 H2 H3 H4 (on C) H5 (on O)
  m.atoms[1].formal_charge = 3;  // clamped to +2
  m.bonds[0].type = BondType::Double;
  const MoleculeFeatures f = featurize(m);
  const int T = 8, F = kShiftAtomFeatures;  // [CLS] 6 atoms [SEP]
  REQUIRE(f.token_features.size() == static_cast<size_t>(T * F));
  REQUIRE(f.token_pairs.size() == static_cast<size_t>(T * T));
  for (int t : {0, T - 1})  // [CLS], [SEP]: the "not an atom" row of every field
    for (int k = 0; k < F; ++k) CHECK(f.token_features[t * F + k] == kShiftAtomFeatureOffsets[k]);
  // carbon (token 1): SP3 (3), not aromatic, not in a ring, 3 H, charge 0
  const int carbon[] = {0 + 1 + 3, 7 + 1 + 0, 10 + 1 + 0, 13 + 1 + 3, 19 + 1 + 2};
  for (int k = 0; k < F; ++k) CHECK(f.token_features[1 * F + k] == carbon[k]);
  CHECK(f.token_features[2 * F + 4] == 19 + 1 + 4);  // oxygen's +3 clamped to +2
  CHECK(f.token_features[3 * F + 0] == 0 + 1 + 0);   // hydrogen: S -> 0
  for (int v : f.token_features) CHECK((v >= 0 && v < kShiftAtomFeatureRows));

  auto pair = [&](int a, int b) { return static_cast<int>(f.token_pairs[(a + 1) * T + (b + 1)]); };
  CHECK(pair(0, 0) == 1);                // itself
  CHECK(pair(0, 1) == 2 + 1);            // C=O (double)
  CHECK(pair(0, 2) == 2 + 0);            // C-H (single)
  CHECK(pair(1, 2) == 6);                // O..H on C: 2 bonds
  CHECK(pair(2, 3) == 6);                // H..H on C: 2 bonds
  CHECK(pair(2, 5) == 7);                // H on C .. H on O: 3 bonds
  for (int a = 0; a < 6; ++a)
    for (int b = 0; b < 6; ++b) CHECK(pair(a, b) == pair(b, a));
  for (int t = 0; t < T; ++t) {  // [CLS]/[SEP] rows and columns are 0
    CHECK(f.token_pairs[t] == 0);
    CHECK(f.token_pairs[t * T] == 0);
    CHECK(f.token_pairs[(T - 1) * T + t] == 0);
    CHECK(f.token_pairs[t * T + T - 1] == 0);
  }

  // Disconnected atoms and paths longer than kShiftPairMaxPath share the last type: a chain of 11 carbons
  // plus one lone atom.
  Molecule chain;
  chain.id = "chain";
  for (int i = 0; i < 12; ++i) chain.atoms.push_back(atom(6, 2, 2));
  for (int i = 0; i + 1 < 11; ++i) chain.bonds.push_back({i, i + 1});
  const MoleculeFeatures g = featurize(chain);
  auto gp = [&](int a, int b) { return static_cast<int>(g.token_pairs[(a + 1) * 14 + (b + 1)]); };
  CHECK(gp(0, 8) == 4 + 8);                // 8 bonds
  CHECK(gp(0, 9) == kShiftPairTypes - 1);  // 9 bonds
  CHECK(gp(0, 11) == kShiftPairTypes - 1); // not connected
  CHECK(gp(11, 11) == 1);
}
