// Molecules through Open Babel (chem/ob_molecule): symmetry classes of the reference molecules, the
// atom order contract of chem/molecule.h, salt stripping with input-index remapping, every rejection reason,
// V3000, InChIKey, 2D/3D coordinates, stereo conventions checked against geometry, the multi-record reader
// with broken records and compressed input, and featurisation equivariance under atom permutations.
#include <doctest/doctest.h>

#include <openbabel/atom.h>
#include <openbabel/builder.h>
#include <openbabel/mol.h>
#include <openbabel/obconversion.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "chem/features.h"
#include "chem/ob_molecule.h"
#include "chem/text_input.h"
#include "engine/error.h"
#include "tests/test_util.h"

using namespace larmor;
using namespace larmor::chem;

namespace {
using test::error_of;  // tests/test_util.h

const std::string kFixtures = std::string(LARMOR_SOURCE_DIR) + "/tests/chem/fixtures/";

std::vector<int32_t> classes(const Molecule& m) {
  std::vector<int32_t> c;
  for (const auto& a : m.atoms) c.push_back(a.symmetry_class);
  return c;
}

int num_classes(const Molecule& m) {
  std::set<int32_t> s;
  for (const auto& a : m.atoms) s.insert(a.symmetry_class);
  return static_cast<int>(s.size());
}

// Hydrogens attached to heavy atom `heavy`, in atom order.
std::vector<int> hydrogens_of(const Molecule& m, int heavy) {
  std::vector<int> hs;
  for (int i = 0; i < m.num_atoms(); ++i)
    if (m.atoms[i].element == 1 && m.atoms[i].heavy == heavy) hs.push_back(i);
  return hs;
}

bool all_same_class(const Molecule& m, const std::vector<int>& atoms) {
  for (int i : atoms)
    if (m.atoms[i].symmetry_class != m.atoms[atoms[0]].symmetry_class) return false;
  return true;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Checks the atom-order contract of chem/molecule.h on any molecule.
void check_order_contract(const Molecule& m) {
  const int n = m.num_atoms();
  REQUIRE(static_cast<int>(m.input_index.size()) == n);
  for (int i = 0; i < n; ++i) {
    if (i < m.num_input_atoms) {
      CHECK(m.input_index[i] >= 0);
      if (i > 0) CHECK(m.input_index[i] > m.input_index[i - 1]);
    } else {
      CHECK(m.input_index[i] == -1);
      CHECK(m.atoms[i].element == 1);
      CHECK(m.atoms[i].heavy >= 0);
      CHECK(m.atoms[i].heavy < m.num_input_atoms);
      if (i > m.num_input_atoms) CHECK(m.atoms[i].heavy >= m.atoms[i - 1].heavy);  // grouped, heavy order
    }
    if (m.atoms[i].element != 1) CHECK(m.atoms[i].heavy == i);
  }
  // num_h and degree agree with the bonds.
  std::vector<int> degree(n, 0), hcount(n, 0);
  for (const auto& b : m.bonds) {
    ++degree[b.a];
    ++degree[b.b];
    if (m.atoms[b.b].element == 1) ++hcount[b.a];
    if (m.atoms[b.a].element == 1) ++hcount[b.b];
  }
  for (int i = 0; i < n; ++i) {
    CHECK(m.atoms[i].degree == degree[i]);
    CHECK(m.atoms[i].num_h == hcount[i]);
  }
  // Symmetry classes dense, in first-appearance order.
  int32_t next = 0;
  for (const auto& a : m.atoms) {
    CHECK(a.symmetry_class <= next);
    if (a.symmetry_class == next) ++next;
  }
}

std::string slurp(const std::string& path) { return read_text_file(path); }

// Geometric handedness in the convention of chem/molecule.h: looking from the centre towards the view
// ligand, are the others (in increasing index order) clockwise?
bool clockwise_from_coords(const Molecule& m, int centre, int view, std::vector<int> others) {
  std::sort(others.begin(), others.end());
  auto v = [&](int i) {
    return std::array<double, 3>{m.coords[i][0] - m.coords[centre][0], m.coords[i][1] - m.coords[centre][1],
                                 m.coords[i][2] - m.coords[centre][2]};
  };
  const auto a = v(others[0]), b = v(others[1]), c = v(others[2]), h = v(view);
  const std::array<double, 3> ab{b[0] - a[0], b[1] - a[1], b[2] - a[2]}, ac{c[0] - a[0], c[1] - a[1], c[2] - a[2]};
  const std::array<double, 3> normal{ab[1] * ac[2] - ab[2] * ac[1], ab[2] * ac[0] - ab[0] * ac[2],
                                     ab[0] * ac[1] - ab[1] * ac[0]};
  // The viewer sits opposite `view`, looking along h; a counterclockwise triangle's normal points at the viewer.
  return normal[0] * h[0] + normal[1] * h[1] + normal[2] * h[2] > 0;
}

// A 3D molblock (all hydrogens explicit) built by Open Babel's builder from a SMILES.
std::string molblock_3d(const std::string& smiles) {
  OpenBabel::OBConversion conv;
  conv.SetInFormat("smi");
  conv.SetOutFormat("mol");
  OpenBabel::OBMol mol;
  REQUIRE(conv.ReadString(&mol, smiles));
  mol.AddHydrogens();
  OpenBabel::OBBuilder builder;
  REQUIRE(builder.Build(mol));
  mol.SetDimension(3);
  return conv.WriteString(&mol);
}

// The same V2000 molblock with its atoms in a new order: atom i of the input becomes atom perm[i].
std::string permute_molblock(const std::string& molblock, const std::vector<int>& perm) {
  std::vector<std::string> lines;
  std::istringstream in(molblock);
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  const int na = std::stoi(lines[3].substr(0, 3)), nb = std::stoi(lines[3].substr(3, 3));
  std::vector<std::string> atoms(na);
  for (int i = 0; i < na; ++i) atoms[perm[i]] = lines[4 + i];
  std::ostringstream out;
  for (int i = 0; i < 4; ++i) out << lines[i] << "\n";
  for (const auto& a : atoms) out << a << "\n";
  for (int k = 0; k < nb; ++k) {
    const std::string& b = lines[4 + na + k];
    const int a1 = std::stoi(b.substr(0, 3)), a2 = std::stoi(b.substr(3, 3));
    char head[32];
    std::snprintf(head, sizeof head, "%3d%3d", perm[a1 - 1] + 1, perm[a2 - 1] + 1);
    out << head << b.substr(6) << "\n";
  }
  for (size_t i = 4 + na + nb; i < lines.size(); ++i) {
    if (lines[i].rfind("M  CHG", 0) == 0 || lines[i].rfind("M  RAD", 0) == 0 || lines[i].rfind("M  ISO", 0) == 0) {
      // "M  CHG  n  aaa vvv ...": remap the atom numbers.
      std::istringstream f(lines[i].substr(6));
      int count;
      f >> count;
      std::ostringstream o;
      o << lines[i].substr(0, 6);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%3d", count);
      o << buf;
      for (int c = 0; c < count; ++c) {
        int atom, value;
        f >> atom >> value;
        std::snprintf(buf, sizeof buf, " %3d %3d", perm[atom - 1] + 1, value);
        o << buf;
      }
      out << o.str() << "\n";
    } else {
      out << lines[i] << "\n";
    }
  }
  return out.str();
}

// Features of `b` equal those of `a` up to the permutation p (atom i of a is atom p[i] of b).
void check_equivariant(const Molecule& ma, const Molecule& mb, const std::vector<int>& p, bool graph_h) {
  FeatureOptions opt;
  opt.graph_hydrogens = graph_h;
  const MoleculeFeatures fa = featurize(ma, opt), fb = featurize(mb, opt);
  const int n = fa.num_atoms;
  REQUIRE(fb.num_atoms == n);
  REQUIRE(fa.num_nodes == fb.num_nodes);
  REQUIRE(fa.num_edges == fb.num_edges);
  for (int i = 0; i < n; ++i) {
    const int j = p[i];
    CHECK(fa.atom_tokens[i] == fb.atom_tokens[j]);
    CHECK(fa.tokens[i + 1] == fb.tokens[j + 1]);
    CHECK(fa.rank[i] == fb.rank[j]);
    CHECK(p[fa.heavy_atom[i]] == fb.heavy_atom[j]);
    const int va = fa.atom_node[i], vb = fb.atom_node[j];
    CHECK((va < 0) == (vb < 0));
    if (va >= 0 && vb >= 0) {
      for (int c = 0; c < 3; ++c) CHECK(fa.node_features[va * 3 + c] == fb.node_features[vb * 3 + c]);
      for (int c = 0; c < 5; ++c) CHECK(fa.node_extra[va * 5 + c] == fb.node_extra[vb * 5 + c]);
    }
    for (int k = 0; k < n; ++k)
      CHECK((fa.symmetry_class[i] == fa.symmetry_class[k]) == (fb.symmetry_class[j] == fb.symmetry_class[p[k]]));
    if (!fa.coords.empty()) {
      REQUIRE(!fb.coords.empty());
      for (int d = 0; d < 3; ++d)
        CHECK(fa.coords[(i + 1) * 3 + d] == doctest::Approx(fb.coords[(j + 1) * 3 + d]).epsilon(1e-4));
    }
  }
  using Edge = std::tuple<int, int, int, int>;
  std::multiset<Edge> ea, eb;
  for (int e = 0; e < fa.num_edges; ++e) {
    const int sa = p[fa.node_atom[fa.edge_index[e]]], ta = p[fa.node_atom[fa.edge_index[fa.num_edges + e]]];
    ea.emplace(sa, ta, fa.edge_features[e * 2], fa.edge_features[e * 2 + 1]);
    const int sb = fb.node_atom[fb.edge_index[e]], tb = fb.node_atom[fb.edge_index[fb.num_edges + e]];
    eb.emplace(sb, tb, fb.edge_features[e * 2], fb.edge_features[e * 2 + 1]);
  }
  CHECK(ea == eb);
}

}  // namespace

TEST_CASE("ob molecule: symmetry classes of benzene, toluene, tert-butanol, ethyl acetate") {
  SUBCASE("benzene") {
    const Molecule m = molecule_from_smiles("c1ccccc1", "benzene");
    REQUIRE(m.num_atoms() == 12);
    CHECK(all_same_class(m, {0, 1, 2, 3, 4, 5}));
    CHECK(all_same_class(m, {6, 7, 8, 9, 10, 11}));
    CHECK(num_classes(m) == 2);
    check_order_contract(m);
  }
  SUBCASE("toluene") {
    // 0 CH3, 1 ipso, 2 ortho, 3 meta, 4 para, 5 meta, 6 ortho
    const Molecule m = molecule_from_smiles("Cc1ccccc1", "toluene");
    REQUIRE(m.num_atoms() == 15);
    const auto c = classes(m);
    CHECK(c[2] == c[6]);
    CHECK(c[3] == c[5]);
    CHECK(std::set<int32_t>{c[0], c[1], c[2], c[3], c[4]}.size() == 5);
    const auto methyl_h = hydrogens_of(m, 0);
    REQUIRE(methyl_h.size() == 3);
    CHECK(all_same_class(m, methyl_h));
    CHECK(c[hydrogens_of(m, 2)[0]] == c[hydrogens_of(m, 6)[0]]);
    CHECK(c[hydrogens_of(m, 3)[0]] == c[hydrogens_of(m, 5)[0]]);
    CHECK(num_classes(m) == 9);  // 5 carbon + 4 hydrogen environments
    check_order_contract(m);
  }
  SUBCASE("tert-butanol") {
    const Molecule m = molecule_from_smiles("CC(C)(C)O", "tBuOH");
    const auto c = classes(m);
    CHECK(all_same_class(m, {0, 2, 3}));
    CHECK(c[1] != c[0]);
    std::vector<int> methyl_h;
    for (int carbon : {0, 2, 3})
      for (int h : hydrogens_of(m, carbon)) methyl_h.push_back(h);
    REQUIRE(methyl_h.size() == 9);
    CHECK(all_same_class(m, methyl_h));
    const auto oh = hydrogens_of(m, 4);
    REQUIRE(oh.size() == 1);
    CHECK(c[oh[0]] != c[methyl_h[0]]);
    CHECK(num_classes(m) == 5);
    check_order_contract(m);
  }
  SUBCASE("ethyl acetate") {
    // 0 CH3 (ethyl), 1 CH2, 2 O, 3 C=O, 4 CH3 (acetyl), 5 =O
    const Molecule m = molecule_from_smiles("CCOC(C)=O", "EtOAc");
    const auto c = classes(m);
    CHECK(std::set<int32_t>{c[0], c[1], c[3], c[4]}.size() == 4);
    CHECK(c[2] != c[5]);
    for (int carbon : {0, 1, 4}) CHECK(all_same_class(m, hydrogens_of(m, carbon)));
    CHECK(std::set<int32_t>{c[hydrogens_of(m, 0)[0]], c[hydrogens_of(m, 1)[0]], c[hydrogens_of(m, 4)[0]]}.size() == 3);
    CHECK(hydrogens_of(m, 0).size() == 3);
    CHECK(hydrogens_of(m, 1).size() == 2);
    CHECK(hydrogens_of(m, 4).size() == 3);
    check_order_contract(m);
  }
}

TEST_CASE("ob molecule: atom order with explicit hydrogens (SMILES and molblock)") {
  SUBCASE("SMILES") {
    // 0 H, 1 O, 2 C, 3 H, 4 C; then the added H: one on atom 2, three on atom 4.
    const Molecule m = molecule_from_smiles("[H]OC([H])C ethanol", "s");
    CHECK(m.title == "ethanol");
    REQUIRE(m.num_atoms() == 9);
    CHECK(m.num_input_atoms == 5);
    const std::vector<int> elements{1, 8, 6, 1, 6, 1, 1, 1, 1};
    const std::vector<int> heavy{1, 1, 2, 2, 4, 2, 4, 4, 4};
    for (int i = 0; i < 9; ++i) {
      CHECK(m.atoms[i].element == elements[i]);
      CHECK(m.atoms[i].heavy == heavy[i]);
    }
    CHECK(m.input_index == std::vector<int32_t>{0, 1, 2, 3, 4, -1, -1, -1, -1});
    CHECK(m.atoms[2].num_h == 2);
    CHECK(m.atoms[4].num_h == 3);
    CHECK(m.smiles == "CCO");
    CHECK(m.formula == "C2H6O");
    CHECK(m.coords.empty());
    check_order_contract(m);
  }
  SUBCASE("molblock") {
    // Methanol drawn with one explicit H on C (atom 2) and the O-H (atom 4): C, H, O, H.
    const std::string mb =
        "methanol\n  handmade  2D\n\n"
        "  4  3  0  0  0  0  0  0  0  0999 V2000\n"
        "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
        "   -0.5000    0.8660    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
        "    1.5000    0.0000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0\n"
        "    2.0000    0.8660    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
        "  1  2  1  0\n  1  3  1  0\n  3  4  1  0\nM  END\n";
    const Molecule m = molecule_from_molblock(mb, "mb");
    CHECK(m.title == "methanol");
    REQUIRE(m.num_atoms() == 6);
    CHECK(m.num_input_atoms == 4);
    const std::vector<int> elements{6, 1, 8, 1, 1, 1};
    const std::vector<int> heavy{0, 0, 2, 2, 0, 0};
    for (int i = 0; i < 6; ++i) {
      CHECK(m.atoms[i].element == elements[i]);
      CHECK(m.atoms[i].heavy == heavy[i]);
    }
    CHECK(all_same_class(m, {1, 4, 5}));  // the drawn and the added methyl H are equivalent
    CHECK(m.coords.empty());               // 2D input: no 3D coordinates
    check_order_contract(m);
  }
}

TEST_CASE("ob molecule: salts and mixtures keep the largest fragment, input indices remap") {
  SUBCASE("sodium acetate") {
    const Molecule m = molecule_from_smiles("CC(=O)[O-].[Na+]", "NaOAc");
    CHECK(m.num_record_atoms == 5);
    CHECK(m.num_input_atoms == 4);
    CHECK(contains(m.note, "kept largest of 2 fragments"));
    CHECK(m.atoms[3].formal_charge == -1);
    CHECK(m.input_index == std::vector<int32_t>{0, 1, 2, 3, -1, -1, -1});
    CHECK(m.input_to_atom() == std::vector<int32_t>{0, 1, 2, 3, -1});
    CHECK(m.formula == "C2H3O2");
    check_order_contract(m);
  }
  SUBCASE("cation first") {
    const Molecule m = molecule_from_smiles("[Na+].CC(=O)[O-]", "NaOAc2");
    CHECK(m.input_index == std::vector<int32_t>{1, 2, 3, 4, -1, -1, -1});
    const auto map = m.input_to_atom();
    CHECK(map == std::vector<int32_t>{-1, 0, 1, 2, 3});
    CHECK(m.atoms[map[1]].element == 6);  // an atomIdx of the record lands on the same atom
  }
  SUBCASE("phenol hydrochloride, both orders") {
    const Molecule a = molecule_from_smiles("c1ccccc1O.Cl", "a");
    const Molecule b = molecule_from_smiles("Cl.c1ccccc1O", "b");
    CHECK(a.num_input_atoms == 7);
    CHECK(b.num_input_atoms == 7);
    for (int i = 0; i < 7; ++i) {
      CHECK(a.input_index[i] == i);
      CHECK(b.input_index[i] == i + 1);
      CHECK(a.atoms[i].element == b.atoms[i].element);
    }
    CHECK(b.input_to_atom()[0] == -1);
    CHECK(a.smiles == b.smiles);
    CHECK(a.inchikey == b.inchikey);
    CHECK(a.smiles == "Oc1ccccc1");
  }
  SUBCASE("tie: the first fragment wins; explicit H fragments count no heavy atoms") {
    const Molecule m = molecule_from_smiles("CO.OC", "tie");
    CHECK(m.input_index[0] == 0);
    CHECK(m.input_index[1] == 1);
    const Molecule h = molecule_from_smiles("[H][H].C", "h2");
    CHECK(h.input_index[0] == 2);
    CHECK(h.num_atoms() == 5);
  }
}

TEST_CASE("ob molecule: rejections name the molecule and the reason") {
  auto smiles_error = [](const std::string& s) { return error_of([&] { molecule_from_smiles(s, "rec:7"); }); };
  const std::string ring = smiles_error("C1CC");
  CHECK(contains(ring, "rec:7: invalid SMILES"));
  CHECK(contains(ring, "unmatched ring"));  // Open Babel's explanation is surfaced
  CHECK(contains(smiles_error("CC("), "unclosed '('"));
  CHECK(contains(smiles_error("CC)C"), "closes no branch"));
  CHECK(contains(smiles_error("C[CH2"), "unterminated '['"));
  CHECK(contains(smiles_error("C*"), "dummy atom '*'"));
  CHECK(contains(smiles_error("[Xx]C"), "unknown element 'Xx'"));
  CHECK(contains(smiles_error(""), "empty SMILES"));
  CHECK(contains(smiles_error("   "), "empty SMILES"));
  CHECK(contains(smiles_error("c1cccc1"), "kekulize"));
  const std::string big = smiles_error(std::string(90, 'C'));
  CHECK(contains(big, "too large: 272 atoms with hydrogens (limit 256)"));
  CHECK_NOTHROW(molecule_from_smiles(std::string(84, 'C'), "c84"));  // 254 atoms
  CHECK(contains(error_of([] { molecule_from_molblock("", "mb:1"); }), "mb:1: empty molblock"));
  CHECK(contains(error_of([] { molecule_from_molblock("junk\n\n\nnot a counts line\n", "mb:2"); }), "mb:2:"));
  const std::string empty_mb = "empty\n  handmade\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n";
  CHECK(contains(error_of([&] { molecule_from_molblock(empty_mb, "mb:3"); }), "empty molecule"));
  const std::string dummy_mb =
      "R group\n  handmade\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n"
      "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "    1.0000    0.0000    0.0000 R#  0  0  0  0  0  0  0  0  0  0  0  0\n"
      "  1  2  1  0\nM  END\n";
  const std::string dummy_error = error_of([&] { molecule_from_molblock(dummy_mb, "mb:4"); });
  CHECK(contains(dummy_error, "mb:4:"));
  CHECK((contains(dummy_error, "dummy atom") || contains(dummy_error, "unknown element")));
}

TEST_CASE("ob molecule: InChIKey, canonical SMILES, formula") {
  const Molecule ethanol = molecule_from_smiles("OCC", "e");
  CHECK(ethanol.inchikey == "LFQSCWFLJHTTHZ-UHFFFAOYSA-N");
  CHECK(ethanol.smiles == "CCO");
  CHECK(ethanol.formula == "C2H6O");
  CHECK(molecule_from_smiles("[NH4+]", "n").formula == "H4N");  // no carbon: alphabetical
  const Molecule l_ala = molecule_from_smiles("N[C@@H](C)C(=O)O", "l");
  const Molecule d_ala = molecule_from_smiles("N[C@H](C)C(=O)O", "d");
  CHECK(l_ala.inchikey == "QNAYBMKLOCPYGJ-REOHCLBHSA-N");  // L-alanine
  CHECK(l_ala.inchikey.substr(0, 14) == d_ala.inchikey.substr(0, 14));
  CHECK(l_ala.inchikey != d_ala.inchikey);
  CHECK(l_ala.smiles != d_ala.smiles);
}

TEST_CASE("ob molecule: V3000 molblock reads like V2000 and like the SMILES") {
  const Molecule from_smiles = molecule_from_smiles("OC(=O)c1ccccc1C", "smi");
  // Open Babel writes the V3000 block (option 3), we read it back.
  OpenBabel::OBConversion conv;
  conv.SetInFormat("smi");
  conv.SetOutFormat("mol");
  conv.AddOption("3", OpenBabel::OBConversion::OUTOPTIONS);
  OpenBabel::OBMol mol;
  REQUIRE(conv.ReadString(&mol, "OC(=O)c1ccccc1C"));
  const std::string v3000 = conv.WriteString(&mol);
  REQUIRE(contains(v3000, "V3000"));
  REQUIRE(contains(v3000, "M  V30 BEGIN ATOM"));
  const Molecule from_v3000 = molecule_from_molblock(v3000, "v3000");
  conv.RemoveOption("3", OpenBabel::OBConversion::OUTOPTIONS);
  const Molecule from_v2000 = molecule_from_molblock(conv.WriteString(&mol), "v2000");
  for (const Molecule* m : {&from_v3000, &from_v2000}) {
    CHECK(m->smiles == from_smiles.smiles);
    CHECK(m->inchikey == from_smiles.inchikey);
    REQUIRE(m->num_atoms() == from_smiles.num_atoms());
    for (int i = 0; i < m->num_atoms(); ++i) {
      CHECK(m->atoms[i].element == from_smiles.atoms[i].element);
      CHECK(m->atoms[i].heavy == from_smiles.atoms[i].heavy);
      CHECK(m->atoms[i].aromatic == from_smiles.atoms[i].aromatic);
      CHECK(m->atoms[i].symmetry_class == from_smiles.atoms[i].symmetry_class);
    }
    check_order_contract(*m);
  }
  // The hand-written V3000 record of the fixture (acetic acid).
  const std::string fixture = slurp(kFixtures + "mol_reader_mixed.sdf");
  const size_t begin = fixture.find("acetic acid, V3000");
  const size_t end = fixture.find("M  END", begin);
  const Molecule acetic = molecule_from_molblock(fixture.substr(begin, end + 7 - begin), "acetic");
  CHECK(acetic.smiles == "CC(=O)O");
  CHECK(acetic.num_atoms() == 8);
  CHECK(acetic.formula == "C2H4O2");
}

TEST_CASE("ob molecule: 3D input keeps coordinates, hydrogens placed; 2D and 0D do not") {
  const std::string heavy_only_3d =
      "ethanol 3D\n  handmade  3D\n\n"
      "  3  2  0  0  0  0  0  0  0  0999 V2000\n"
      "   -0.8883    0.1670   -0.0273 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "    0.4658   -0.5116   -0.0368 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "    1.4311    0.3229    0.5867 O   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "  1  2  1  0\n  2  3  1  0\nM  END\n";
  const Molecule m = molecule_from_molblock(heavy_only_3d, "3d");
  REQUIRE(m.has_3d());
  REQUIRE(m.coords.size() == 9);
  CHECK(m.coords[0][0] == doctest::Approx(-0.8883));
  CHECK(m.coords[2][2] == doctest::Approx(0.5867));
  for (int i = 3; i < 9; ++i) {
    const int h = m.atoms[i].heavy;
    double d2 = 0;
    for (int k = 0; k < 3; ++k) d2 += std::pow(m.coords[i][k] - m.coords[h][k], 2);
    CHECK(std::sqrt(d2) > 0.85);  // placed by Open Babel next to its heavy atom
    CHECK(std::sqrt(d2) < 1.2);
  }
  CHECK_FALSE(molecule_from_smiles("CCO", "0d").has_3d());

  // A drawing labelled "3D" with every z = 0 (how NMRShiftDB2/CASCADE exports look): no coordinates, and its
  // double-bond geometry read as a 2D drawing.
  const std::string flat_3d =
      "trans-2-butene drawn flat\n     RDKit          3D\n\n"
      "  4  3  0  0  0  0  0  0  0  0999 V2000\n"
      "   10.0000   10.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "   20.0000   15.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "   30.0000   10.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "   40.0000   15.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "  1  2  1  0\n  2  3  2  0\n  3  4  1  0\nM  END\n";
  const Molecule flat = molecule_from_molblock(flat_3d, "flat");
  CHECK_FALSE(flat.has_3d());
  CHECK(flat.inchikey == molecule_from_smiles("C/C=C/C", "e").inchikey);
  // Real z but drawing-sized bonds: coordinates dropped, and said so.
  std::string scaled = flat_3d;
  scaled.replace(scaled.find("   40.0000   15.0000    0.0000"), 30, "   40.0000   15.0000    5.0000");
  const Molecule big = molecule_from_molblock(scaled, "scaled");
  CHECK_FALSE(big.has_3d());
  CHECK(contains(big.note, "3D coordinates ignored"));
}

TEST_CASE("ob molecule: tetrahedral stereo follows the index convention of molecule.h") {
  // F[C@@H](Cl)Br: looking from C towards H, F(0) Cl(2) Br(3) run clockwise.
  const Molecule cw = molecule_from_smiles("F[C@@H](Cl)Br", "cw");
  const Molecule ccw = molecule_from_smiles("F[C@H](Cl)Br", "ccw");
  CHECK(cw.atoms[1].chirality == Chirality::Clockwise);
  CHECK(ccw.atoms[1].chirality == Chirality::CounterClockwise);
  // An unmarked stereocentre is Unspecified from SMILES and from a molblock alike; a marked centre that is
  // not stereogenic is None.
  CHECK(molecule_from_smiles("FC(Cl)Br", "unmarked").atoms[1].chirality == Chirality::Unspecified);
  CHECK(molecule_from_molblock(molblock_3d("FC(Cl)Br"), "unmarked3d").atoms[1].chirality != Chirality::None);
  CHECK(molecule_from_smiles("C[C@H](C)O", "not stereogenic").atoms[1].chirality == Chirality::None);
  CHECK(molecule_from_smiles("CC(C)O", "plain").atoms[1].chirality == Chirality::None);
  // Same molecules from 3D structures: the chirality must agree with the geometry.
  for (const char* smiles : {"F[C@@H](Cl)Br", "F[C@H](Cl)Br", "N[C@@H](C)C(=O)O", "C[C@](N)(O)CC", "[H][C@](F)(Cl)Br"}) {
    CAPTURE(smiles);
    const Molecule flat = molecule_from_smiles(smiles, "flat");
    const Molecule m = molecule_from_molblock(molblock_3d(smiles), "3d");
    REQUIRE(m.has_3d());
    CHECK(m.inchikey == flat.inchikey);
    int checked = 0;
    for (int c = 0; c < m.num_atoms(); ++c) {
      if (m.atoms[c].chirality != Chirality::Clockwise && m.atoms[c].chirality != Chirality::CounterClockwise) continue;
      std::vector<int> nbs;
      for (const auto& b : m.bonds) {
        if (b.a == c) nbs.push_back(b.b);
        if (b.b == c) nbs.push_back(b.a);
      }
      REQUIRE(nbs.size() == 4);
      int view = *std::max_element(nbs.begin(), nbs.end());
      for (int nb : nbs)
        if (m.atoms[nb].element == 1) view = nb;
      std::vector<int> others;
      for (int nb : nbs)
        if (nb != view) others.push_back(nb);
      CHECK((m.atoms[c].chirality == Chirality::Clockwise) == clockwise_from_coords(m, c, view, others));
      ++checked;
    }
    CHECK(checked == 1);
  }
}

TEST_CASE("ob molecule: cis/trans stereo as SMILES-style flags, read back the same") {
  const Molecule trans = molecule_from_smiles("F/C=C/F", "t");
  const Molecule cis = molecule_from_smiles("F/C=C\\F", "c");
  auto flag = [](const Molecule& m, int a, int b) {
    for (const auto& bond : m.bonds)
      if ((bond.a == a && bond.b == b) || (bond.a == b && bond.b == a)) return bond;
    FAIL("no bond");
    return Bond{};
  };
  // Exactly one flagged bond on each side of the double bond.
  int flagged = 0;
  for (const auto& b : trans.bonds)
    if (b.stereo != BondStereo::None) ++flagged;
  CHECK(flagged == 2);
  CHECK(flag(trans, 0, 1).stereo != BondStereo::None);
  CHECK(flag(trans, 2, 3).stereo != BondStereo::None);
  // Features: direction column 1 (trans) / 2 (cis) on the double bond.
  auto double_bond_direction = [](const Molecule& m) {
    const auto f = featurize(m);
    for (int e = 0; e < f.num_edges; ++e)
      if (f.edge_features[e * 2] == 1) return f.edge_features[e * 2 + 1];
    return -1;
  };
  CHECK(double_bond_direction(trans) == 1);
  CHECK(double_bond_direction(cis) == 2);
  CHECK(double_bond_direction(molecule_from_smiles("FC=CF", "u")) == 0);
  // 3D structures of the same molecules agree.
  CHECK(double_bond_direction(molecule_from_molblock(molblock_3d("F/C=C/F"), "t3")) == 1);
  CHECK(double_bond_direction(molecule_from_molblock(molblock_3d("F/C=C\\F"), "c3")) == 2);
  // Conjugated: both double bonds specified, the shared single bond flagged consistently.
  const Molecule diene = molecule_from_smiles("C/C=C/C=C\\C", "diene");
  const Molecule diene3d = molecule_from_molblock(molblock_3d("C/C=C/C=C\\C"), "diene3d");
  CHECK(diene.inchikey == diene3d.inchikey);
  const auto fd = featurize(diene), fd3 = featurize(diene3d);
  std::multiset<int> dirs, dirs3;
  for (int e = 0; e < fd.num_edges; ++e)
    if (fd.edge_features[e * 2] == 1) dirs.insert(fd.edge_features[e * 2 + 1]);
  for (int e = 0; e < fd3.num_edges; ++e)
    if (fd3.edge_features[e * 2] == 1) dirs3.insert(fd3.edge_features[e * 2 + 1]);
  CHECK(dirs == std::multiset<int>{1, 1, 2, 2});
  CHECK(dirs == dirs3);
}

TEST_CASE("ob molecule: reader goes past broken SD records and names them") {
  MoleculeReader reader(kFixtures + "mol_reader_mixed.sdf");
  CHECK(reader.format() == MoleculeFormat::Sdf);
  std::vector<MoleculeRecord> records;
  MoleculeRecord r;
  while (reader.next(r)) records.push_back(r);
  REQUIRE(records.size() == 5);
  CHECK(records[0].ok());
  CHECK(records[0].molecule->smiles == "CCO");
  CHECK(records[0].molecule->title == "ethanol");
  CHECK(records[0].tags.at("ID") == "mol-1");
  CHECK(records[0].tags.at("Comment") == "first line\nsecond line");
  CHECK(records[0].molecule->tags.at("ID") == "mol-1");
  CHECK(records[0].line == 1);
  CHECK_FALSE(records[1].ok());
  CHECK(contains(records[1].error, "record 2 (line"));
  CHECK(contains(records[1].error, "'Xx'"));
  CHECK(records[1].tags.at("ID") == "mol-2");
  CHECK(records[2].ok());
  CHECK(records[2].molecule->smiles == "CC(=O)O");
  CHECK(records[2].id == kFixtures + "mol_reader_mixed.sdf:3");
  CHECK_FALSE(records[3].ok());
  CHECK(contains(records[3].error, "record 4"));
  CHECK(contains(records[3].error, "M  END"));
  REQUIRE(records[4].ok());
  const Molecule& benzoate = *records[4].molecule;
  CHECK(benzoate.smiles == "[O-]C(=O)c1ccccc1");
  CHECK(contains(benzoate.note, "kept largest of 2 fragments"));
  CHECK(benzoate.input_index[0] == 1);  // record atom 0 is the Na+
  CHECK(benzoate.input_to_atom()[0] == -1);
  CHECK(benzoate.input_to_atom()[9] == 8);
  CHECK(benzoate.atoms[8].formal_charge == -1);
  CHECK(benzoate.tags.at("ID") == "mol-5");
}

TEST_CASE("ob molecule: reader on gzip, truncated gzip, SMILES files and stdin-like streams") {
  const std::string text = slurp(kFixtures + "mol_reader_mixed.sdf");
  const std::string gz = compress_bytes(text, Compression::Gzip);
  SUBCASE("gzip") {
    MoleculeReader reader = MoleculeReader::from_string("mixed.sdf.gz", gz);
    int ok = 0, bad = 0;
    MoleculeRecord r;
    while (reader.next(r)) (r.ok() ? ok : bad)++;
    CHECK(ok == 3);
    CHECK(bad == 2);
  }
  SUBCASE("truncated gzip: the records before the damage, then one error") {
    MoleculeReader reader = MoleculeReader::from_string("cut.sdf.gz", gz.substr(0, gz.size() * 2 / 3));
    std::vector<MoleculeRecord> records;
    MoleculeRecord r;
    while (reader.next(r)) records.push_back(r);
    REQUIRE(!records.empty());
    CHECK_FALSE(records.back().ok());
    CHECK(contains(records.back().error, "reading stopped"));
    CHECK(records.front().ok());
  }
  SUBCASE("SMILES file, sniffed and by extension") {
    const std::string smi = "# comment\nCCO ethanol\n\nC1CC broken\nc1ccccc1 benzene\n[Na+].[Cl-] salt\n";
    for (const char* name : {"list.smi", "stdin"}) {
      MoleculeReader reader = MoleculeReader::from_string(name, smi);
      CHECK(reader.format() == MoleculeFormat::Smiles);
      std::vector<MoleculeRecord> records;
      MoleculeRecord r;
      while (reader.next(r)) records.push_back(r);
      REQUIRE(records.size() == 4);
      CHECK(records[0].ok());
      CHECK(records[0].title == "ethanol");
      CHECK(records[0].molecule->title == "ethanol");
      CHECK(records[0].line == 2);
      CHECK_FALSE(records[1].ok());
      CHECK(contains(records[1].error, std::string(name) + ":4: invalid SMILES"));
      CHECK(records[2].molecule->smiles == "c1ccccc1");
      CHECK(records[3].ok());  // a tie of two single-atom ions keeps the first
      CHECK(records[3].molecule->num_atoms() == 1);
    }
  }
  SUBCASE("SD text without extension is sniffed; streams work") {
    std::istringstream in(text);
    MoleculeReader reader = MoleculeReader::from_stream("stdin", in);
    CHECK(reader.format() == MoleculeFormat::Sdf);
    int n = 0;
    MoleculeRecord r;
    while (reader.next(r)) ++n;
    CHECK(n == 5);
  }
}

TEST_CASE("ob molecule: featurisation is equivariant to the input atom order") {
  SUBCASE("two SMILES of L-alanine") {
    // a: N0 C1(@@, H) C2(H3) C3 O4 O5(H);  b: O0 C1 O2 C3(@) N4 C5
    const Molecule a = molecule_from_smiles("N[C@@H](C)C(=O)O", "a");
    const Molecule b = molecule_from_smiles("OC(=O)[C@@H](N)C", "b");
    REQUIRE(a.inchikey == b.inchikey);
    const std::vector<int> heavy_map{4, 3, 5, 1, 2, 0};
    std::vector<int> p(a.num_atoms(), -1);
    for (int i = 0; i < 6; ++i) p[i] = heavy_map[i];
    // Hydrogens: k-th H of heavy atom h in a -> k-th H of heavy atom p[h] in b.
    for (int h = 0; h < 6; ++h) {
      const auto ha = hydrogens_of(a, h), hb = hydrogens_of(b, p[h]);
      REQUIRE(ha.size() == hb.size());
      for (size_t k = 0; k < ha.size(); ++k) p[ha[k]] = hb[k];
    }
    const auto fa = featurize(a);
    CHECK(fa.node_features[1 * 3 + 1] != 0);  // the stereocentre is tagged
    check_equivariant(a, b, p, true);
    check_equivariant(a, b, p, false);
  }
  SUBCASE("random permutations of 3D molblocks") {
    std::mt19937 rng(12345);
    for (const char* smiles : {"N[C@@H](C)C(=O)O", "CC(C)(C)O", "CCOC(C)=O", "Cc1ccccc1", "C/C=C/C(=O)O",
                               "C[C@@H]1CC[C@H](C(C)C)[C@@H](O)C1", "O=C([O-])c1ccccc1[N+](=O)[O-]", "C/C=C/C=C\\CBr"}) {
      CAPTURE(smiles);
      const std::string mb = molblock_3d(smiles);
      const Molecule a = molecule_from_molblock(mb, "a");
      REQUIRE(a.num_input_atoms == a.num_atoms());  // every H explicit: molblock order is the atom order
      for (int trial = 0; trial < 3; ++trial) {
        std::vector<int> p(a.num_atoms());
        std::iota(p.begin(), p.end(), 0);
        std::shuffle(p.begin(), p.end(), rng);
        const Molecule b = molecule_from_molblock(permute_molblock(mb, p), "b");
        REQUIRE(b.num_atoms() == a.num_atoms());
        CHECK(b.inchikey == a.inchikey);
        CHECK(b.smiles == a.smiles);
        for (int i = 0; i < a.num_atoms(); ++i) CHECK(b.atoms[p[i]].element == a.atoms[i].element);
        check_equivariant(a, b, p, true);
        check_equivariant(a, b, p, false);
      }
    }
  }
}

TEST_CASE("ob molecule: init_openbabel is idempotent and parsing works from several threads") {
  init_openbabel();
  init_openbabel();
  std::vector<std::string> keys(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&keys, t] {
      for (int k = 0; k < 20; ++k) keys[t] = molecule_from_smiles("CC(=O)Oc1ccccc1C(=O)O", "aspirin").inchikey;
    });
  for (auto& th : threads) th.join();
  for (const auto& k : keys) CHECK(k == "BSYNRYMUTXBXSQ-UHFFFAOYSA-N");
}

TEST_CASE("ob molecule: shared NMR8K records read, in molblock atom order, agreeing with their SMILES tags") {
  const std::string path = std::string(LARMOR_SHARED_DATA) + "/cascade_nmrshiftdb8k/NMR8K.sdf.gz";
  if (!std::ifstream(path).good()) {
    MESSAGE("shared data absent (" << path << "): skipped");
    return;
  }
  MoleculeReader reader(path);
  MoleculeRecord r;
  int read = 0, failed = 0, same_skeleton = 0, with_smiles = 0;
  while (read + failed < 1000 && reader.next(r)) {
    if (!r.ok()) {
      ++failed;
      MESSAGE(r.error);
      continue;
    }
    ++read;
    const Molecule& m = *r.molecule;
    CHECK(m.num_record_atoms > 0);
    CHECK_FALSE(m.has_3d());  // flat drawings labelled 3D
    REQUIRE(m.input_index.size() == m.atoms.size());
    for (int i = 0; i < m.num_input_atoms; ++i) {
      if (m.atoms[i].element != 1) CHECK(m.atoms[i].heavy == i);
    }
    if (m.note.empty()) {
      CHECK(m.num_input_atoms == m.num_record_atoms);
      for (int i = 0; i < m.num_input_atoms; ++i) CHECK(m.input_index[i] == i);  // molblock order kept
    }
    auto it = r.tags.find("SMILES");
    if (it == r.tags.end()) continue;
    ++with_smiles;
    const Molecule s = molecule_from_smiles(it->second, "tag");
    if (s.inchikey.substr(0, 14) == m.inchikey.substr(0, 14)) ++same_skeleton;
  }
  CHECK(failed == 0);
  CHECK(read == 1000);
  CHECK(with_smiles > 900);
  CHECK(same_skeleton >= with_smiles - 2);
}
