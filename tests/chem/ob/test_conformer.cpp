// Conformer generation (chem/ob_conformer.h): geometry sanity on well-known molecules, determinism for a seed,
// process-parallel == serial bit for bit, atom order, UFF fallback, stereo, bad input, Molecule -> molblock.
//
// Geometry thresholds. Bond lengths are checked against textbook ranges (C-C single 1.45-1.60 Å, aromatic
// C-C 1.36-1.43, C=C 1.30-1.38, C-H 1.05-1.15, O-H/N-H 0.93-1.06) and every bond within 0.8-1.2x the sum
// of covalent radii. Clashes are judged only between atoms that are neither bonded nor share a neighbour
// (1-2 and 1-3 distances are fixed by bonds and angles): H..H >= 1.6 Å (van der Waals contact is ~2.4 Å,
// eclipsed 1-4 H..H ~2.3 Å, crowded contacts ~1.9 Å), H..heavy >= 1.5 Å (the shortest intramolecular
// hydrogen bonds, H..O ~1.6-1.8 Å), heavy..heavy >= 2.3 Å (1-4 pairs in rings and s-cis chains are >= 2.5 Å,
// strong O-H..O hydrogen bonds keep O..O at ~2.5 Å, and a gas-phase zwitterion's 1-4 N+..O- salt bridge
// minimises to ~2.47 Å; overlapping atoms from a broken build sit far below 2 Å).
#include <doctest/doctest.h>
#include <openbabel/atom.h>
#include <openbabel/bond.h>
#include <openbabel/mol.h>
#include <openbabel/obconversion.h>
#include <openbabel/obiter.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "chem/ob_conformer.h"
#include "chem/ob_molecule.h"
#include "engine/error.h"

namespace {

using larmor::chem::ConformerOptions;
using larmor::chem::ConformerResult;
using larmor::chem::generate_conformer;
using larmor::chem::generate_conformers;
using larmor::chem::smiles_to_molblock;

struct TestBond {
  int a, b, order;
  bool aromatic;
};

struct Topology {
  std::vector<int> z;  // atomic numbers, molblock order
  std::vector<TestBond> bonds;
};

// Atoms and bonds of a molblock as Open Babel perceives them (aromaticity included).
Topology topology_of(const std::string& molblock) {
  OpenBabel::OBConversion conv;
  REQUIRE(conv.SetInFormat("mol"));
  OpenBabel::OBMol mol;
  REQUIRE(conv.ReadString(&mol, molblock));
  Topology t;
  for (OpenBabel::OBMolAtomIter a(mol); a; ++a) t.z.push_back(static_cast<int>(a->GetAtomicNum()));
  for (OpenBabel::OBMolBondIter b(mol); b; ++b)
    t.bonds.push_back({static_cast<int>(b->GetBeginAtomIdx()) - 1, static_cast<int>(b->GetEndAtomIdx()) - 1,
                       static_cast<int>(b->GetBondOrder()), b->IsAromatic()});
  return t;
}

double dist(const std::array<float, 3>& p, const std::array<float, 3>& q) {
  const double dx = p[0] - q[0], dy = p[1] - q[1], dz = p[2] - q[2];
  return std::sqrt(dx * dx + dy * dy + dz * dz);
}

double covalent_radius(int z) {  // Cordero et al. 2008 (sp3 C)
  switch (z) {
    case 1: return 0.31;
    case 5: return 0.84;
    case 6: return 0.76;
    case 7: return 0.71;
    case 8: return 0.66;
    case 9: return 0.57;
    case 14: return 1.11;
    case 15: return 1.07;
    case 16: return 1.05;
    case 17: return 1.02;
    case 34: return 1.20;
    case 35: return 1.20;
    case 53: return 1.39;
    default: return 1.5;
  }
}

// Checks bond lengths and clashes as described at the top; `what` names the molecule in failures.
void check_geometry(const std::string& what, const std::string& molblock, const ConformerResult& r) {
  INFO(what);
  REQUIRE_MESSAGE(r.ok, r.error);
  const Topology t = topology_of(molblock);
  REQUIRE(r.coords.size() == t.z.size());
  const size_t n = t.z.size();
  std::vector<std::vector<int>> nbrs(n);
  for (const TestBond& b : t.bonds) {
    nbrs[static_cast<size_t>(b.a)].push_back(b.b);
    nbrs[static_cast<size_t>(b.b)].push_back(b.a);
    const int za = t.z[static_cast<size_t>(b.a)], zb = t.z[static_cast<size_t>(b.b)];
    const double d = dist(r.coords[static_cast<size_t>(b.a)], r.coords[static_cast<size_t>(b.b)]);
    INFO("bond " << b.a << "-" << b.b << " (Z " << za << "-" << zb << ", order " << b.order
                 << (b.aromatic ? ", aromatic" : "") << ") = " << d << " A");
    const double ref = covalent_radius(za) + covalent_radius(zb);
    CHECK(d > 0.8 * ref);
    CHECK(d < 1.2 * ref);
    if (za == 6 && zb == 6) {
      if (b.aromatic) {
        CHECK(d >= 1.36);
        CHECK(d <= 1.43);
      } else if (b.order == 1) {
        CHECK(d >= 1.45);
        CHECK(d <= 1.60);
      } else if (b.order == 2) {
        CHECK(d >= 1.30);
        CHECK(d <= 1.38);
      }
    }
    if ((za == 1) != (zb == 1)) {
      const int heavy = za == 1 ? zb : za;
      if (heavy == 6) {
        CHECK(d >= 1.05);
        CHECK(d <= 1.15);
      } else if (heavy == 7 || heavy == 8) {
        CHECK(d >= 0.93);
        CHECK(d <= 1.06);
      }
    }
  }
  std::vector<int> hops(n);  // bonds between atom i and each other atom, up to 3 (3 = 1-4 or further)
  for (size_t i = 0; i < n; ++i) {
    std::fill(hops.begin(), hops.end(), 3);
    for (int j : nbrs[i])
      for (int k : nbrs[static_cast<size_t>(j)]) hops[static_cast<size_t>(k)] = 2;
    for (int j : nbrs[i]) hops[static_cast<size_t>(j)] = 1;
    for (size_t j = i + 1; j < n; ++j) {
      if (hops[j] < 3) continue;
      const int hi = (t.z[i] == 1) + (t.z[j] == 1);
      const double limit = hi == 2 ? 1.6 : hi == 1 ? 1.5 : 2.3;
      const double d = dist(r.coords[i], r.coords[j]);
      INFO("non-bonded pair " << i << "-" << j << " (Z " << t.z[i] << "-" << t.z[j] << ") = " << d << " A");
      CHECK(d >= limit);
    }
  }
}

bool same_bits(const ConformerResult& a, const ConformerResult& b) {
  const size_t coord_bytes = a.coords.size() * sizeof(a.coords[0]);
  return a.ok == b.ok && a.coords.size() == b.coords.size() &&
         (a.coords.empty() || std::memcmp(a.coords.data(), b.coords.data(), coord_bytes) == 0) &&
         std::memcmp(&a.energy, &b.energy, sizeof(double)) == 0 &&
         std::memcmp(&a.rms_force, &b.rms_force, sizeof(double)) == 0 && a.steps == b.steps &&
         a.attempt == b.attempt && a.stereo_ok == b.stereo_ok && a.forcefield_used == b.forcefield_used &&
         a.warning == b.warning && a.error == b.error;
}

// Triple product of the positions of atoms i, j, k relative to centre c (sign = handedness).
double triple(const ConformerResult& r, int c, int i, int j, int k) {
  auto rel = [&](int a) {
    const auto& p = r.coords[static_cast<size_t>(a)];
    const auto& q = r.coords[static_cast<size_t>(c)];
    return std::array<double, 3>{p[0] - q[0], p[1] - q[1], p[2] - q[2]};
  };
  const auto a = rel(i), b = rel(j), d = rel(k);
  return a[0] * (b[1] * d[2] - b[2] * d[1]) - a[1] * (b[0] * d[2] - b[2] * d[0]) + a[2] * (b[0] * d[1] - b[1] * d[0]);
}

double torsion(const ConformerResult& r, int i, int j, int k, int l) {
  auto sub = [&](int a, int b) {
    const auto& p = r.coords[static_cast<size_t>(a)];
    const auto& q = r.coords[static_cast<size_t>(b)];
    return std::array<double, 3>{p[0] - q[0], p[1] - q[1], p[2] - q[2]};
  };
  auto cross = [](const std::array<double, 3>& a, const std::array<double, 3>& b) {
    return std::array<double, 3>{a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
  };
  auto dot = [](const std::array<double, 3>& a, const std::array<double, 3>& b) {
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  };
  const auto b1 = sub(j, i), b2 = sub(k, j), b3 = sub(l, k);
  const auto n1 = cross(b1, b2), n2 = cross(b2, b3);
  const double len = std::sqrt(dot(b2, b2));
  const std::array<double, 3> b2u{b2[0] / len, b2[1] / len, b2[2] / len};
  return std::atan2(dot(cross(n1, n2), b2u), dot(n1, n2)) * 180.0 / M_PI;
}

// ~200 varied molecules: scaffolds x substituents (rings, stereo, charges, P, S, F, B/Se for the UFF path).
std::vector<std::string> combinatorial_smiles() {
  const char* scaffolds[] = {"c1ccc(X)cc1",         "CC(X)C(=O)O",         "O[C@H]1CCCC[C@@H]1X",
                             "C1CN(X)CCO1",         "O=C(NC1CC1)CX",       "COC(=O)/C=C/CX",
                             "Cn1cnc2c1c(=O)n(C)c(=O)n2CX", "c1ccc2ccccc2c1X", "N[C@@H](CX)C(=O)O",
                             "FC(F)(F)c1ccc(OCX)cc1"};
  const char* substituents[] = {"C",       "CC",           "O",        "OC",        "N",     "F",    "Cl",
                                "Br",      "C(F)(F)F",     "C#N",      "C(C)=O",    "[N+](=O)[O-]",
                                "S(C)(=O)=O", "P(=O)(OC)OC", "c9ccccc9", "C9CC9",   "OC(C)=O", "N(C)C",
                                "[Se]C",   "B(O)O"};
  std::vector<std::string> out;
  for (const char* scaffold : scaffolds)
    for (const char* sub : substituents) {
      std::string s = scaffold;
      s.replace(s.find('X'), 1, sub);
      out.push_back(s);
    }
  return out;
}

}  // namespace

TEST_CASE("conformer: sane bond lengths and no clashes for well-known molecules") {
  const std::pair<const char*, const char*> molecules[] = {
      {"ethane", "CC"},
      {"benzene", "c1ccccc1"},
      {"ethanol", "CCO"},
      {"aspirin", "CC(=O)Oc1ccccc1C(=O)O"},
      {"caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"},
      {"peptide Ala-Gly-Ser", "C[C@H](N)C(=O)NCC(=O)N[C@@H](CO)C(=O)O"},
      {"P and F: diethyl (trifluoromethyl)phosphonate", "CCOP(=O)(OCC)C(F)(F)F"},
      {"P and F: 4-fluorophenylphosphonic acid", "OP(=O)(O)c1ccc(F)cc1"},
  };
  for (const auto& [name, smiles] : molecules) {
    const std::string mb = smiles_to_molblock(smiles);
    const ConformerResult r = generate_conformer(mb, ConformerOptions{});
    check_geometry(name, mb, r);
    CHECK(r.forcefield_used == "MMFF94");
    CHECK(r.stereo_ok);
    CHECK_FALSE(r.hit_time_limit);
    CHECK(r.rms_force < 0.2 + 1e-9);  // converged, not stopped by max_steps
  }
}

TEST_CASE("conformer: same seed gives identical coordinates, another seed another build") {
  const std::string mb = smiles_to_molblock("CC(=O)Oc1ccccc1C(=O)O");
  ConformerOptions opt;
  opt.seed = 7;
  const ConformerResult a = generate_conformer(mb, opt);
  const ConformerResult b = generate_conformer(mb, opt);
  REQUIRE(a.ok);
  CHECK(same_bits(a, b));
  // The title and timestamp lines are not part of the seed: the same structure under another name builds alike.
  std::string renamed = mb;
  renamed.replace(0, renamed.find('\n'), "another record");
  const size_t line2 = renamed.find('\n') + 1;
  renamed.replace(line2, renamed.find('\n', line2) - line2, "  OtherProg01012099993D");
  CHECK(same_bits(a, generate_conformer(renamed, opt)));
  opt.seed = 8;
  const ConformerResult c = generate_conformer(mb, opt);
  REQUIRE(c.ok);
  CHECK_FALSE(std::memcmp(a.coords.data(), c.coords.data(), a.coords.size() * sizeof(a.coords[0])) == 0);
}

TEST_CASE("conformer: worker processes reproduce the serial results bit for bit") {
  std::vector<std::string> molblocks;
  for (const std::string& s : combinatorial_smiles()) molblocks.push_back(smiles_to_molblock(s));
  // Repeats (Open Babel skips force-field setup for look-alike molecules), stereoisomers next to each other,
  // and input that must fail, mixed in.
  molblocks.push_back(molblocks[3]);
  molblocks.push_back(molblocks[3]);
  molblocks.push_back(smiles_to_molblock("C[C@H](O)CC"));
  molblocks.push_back(smiles_to_molblock("C[C@@H](O)CC"));
  molblocks.push_back("not a molblock");
  molblocks.push_back(smiles_to_molblock("CCO").substr(0, 120));
  ConformerOptions opt;
  opt.seed = 3;
  std::vector<ConformerResult> serial;
  for (const std::string& mb : molblocks) serial.push_back(generate_conformer(mb, opt));
  size_t progress_calls = 0, last_done = 0;
  bool monotonic = true;
  const auto first = generate_conformers(molblocks, opt, 2, [&](size_t done, size_t total) {
    ++progress_calls;
    monotonic &= done == last_done + 1 && total == molblocks.size();
    last_done = done;
  });
  const auto second = generate_conformers(molblocks, opt, 2);
  const auto three = generate_conformers(molblocks, opt, 3);
  REQUIRE(first.size() == molblocks.size());
  CHECK(progress_calls == molblocks.size());
  CHECK(monotonic);
  size_t ok = 0, differing = 0;
  for (size_t i = 0; i < molblocks.size(); ++i) {
    ok += serial[i].ok;
    const bool same =
        same_bits(serial[i], first[i]) && same_bits(serial[i], second[i]) && same_bits(serial[i], three[i]);
    if (!same) {
      ++differing;
      MESSAGE("molecule " << i << " differs between serial and parallel runs");
    }
  }
  CHECK(differing == 0);
  CHECK(ok >= molblocks.size() - 2);  // only the two broken molblocks fail
  CHECK_FALSE(serial[molblocks.size() - 1].ok);
  CHECK_FALSE(serial[molblocks.size() - 2].ok);
}

TEST_CASE("conformer: a worker that crashes costs one molecule, not the run") {
  // A molblock starting with this line makes a worker process abort (test hook in ob_conformer.cpp).
  const std::string crash = "larmor-conformer-test: abort this worker\n" + smiles_to_molblock("CCO");
  std::vector<std::string> molblocks;
  for (const char* s : {"CCO", "c1ccccc1O", "CC(=O)N", "OCC(O)CO", "CCN(CC)CC", "Clc1ccccc1"})
    molblocks.push_back(smiles_to_molblock(s));
  molblocks.insert(molblocks.begin() + 2, crash);
  molblocks.push_back(crash);
  const auto results = generate_conformers(molblocks, ConformerOptions{}, 2);
  REQUIRE(results.size() == molblocks.size());
  for (size_t i = 0; i < molblocks.size(); ++i) {
    INFO("molecule " << i << ": " << results[i].error);
    if (molblocks[i] == crash) {
      CHECK_FALSE(results[i].ok);
      CHECK(results[i].error.find("signal") != std::string::npos);
    } else {
      CHECK(same_bits(results[i], generate_conformer(molblocks[i], ConformerOptions{})));
    }
  }
}

TEST_CASE("conformer: coordinates follow the molblock's atom order") {
  // Ethanol written with its hydrogens first and heavy atoms in reverse: bonds are only right if coords[i]
  // belongs to atom i of this very molblock.
  const std::string mb =
      "ethanol, shuffled\n  larmor          0D\n\n"
      "  9  8  0  0  0  0  0  0  0  0999 V2000\n"
      "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"  // 0: H on O
      "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"  // 1: H on C1
      "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"  // 2: H on C1
      "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"  // 3: H on C2
      "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"  // 4: H on C2
      "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"  // 5: H on C2
      "    0.0000    0.0000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0\n"  // 6
      "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"  // 7: CH2
      "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"  // 8: CH3
      "  7  8  1  0\n  8  9  1  0\n  1  7  1  0\n  2  8  1  0\n  3  8  1  0\n  4  9  1  0\n  5  9  1  0\n  6  9  1  0\n"
      "M  END\n";
  const ConformerResult r = generate_conformer(mb, ConformerOptions{});
  check_geometry("shuffled ethanol", mb, r);
  CHECK(dist(r.coords[6], r.coords[0]) == doctest::Approx(0.97).epsilon(0.04));  // O-H
  CHECK(dist(r.coords[6], r.coords[7]) == doctest::Approx(1.42).epsilon(0.03));  // C-O
  // Every atom list Open Babel adds H to from SMILES keeps the SMILES order: element by element.
  const std::string aspirin = smiles_to_molblock("CC(=O)Oc1ccccc1C(=O)O");
  const Topology t = topology_of(aspirin);
  const int heavy[] = {6, 6, 8, 8, 6, 6, 6, 6, 6, 6, 6, 8, 8};
  for (size_t i = 0; i < std::size(heavy); ++i) CHECK(t.z[i] == heavy[i]);
  for (size_t i = std::size(heavy); i < t.z.size(); ++i) CHECK(t.z[i] == 1);
  CHECK(generate_conformer(aspirin, ConformerOptions{}).coords.size() == t.z.size());
}

TEST_CASE("conformer: elements MMFF94 cannot type fall back to UFF") {
  for (const char* smiles : {"CC[Se]CC", "OB(O)c1ccccc1"}) {
    const std::string mb = smiles_to_molblock(smiles);
    const ConformerResult r = generate_conformer(mb, ConformerOptions{});
    INFO(smiles);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.forcefield_used == "UFF");
    CHECK(r.warning.find("UFF") != std::string::npos);
    CHECK(r.coords.size() == topology_of(mb).z.size());
  }
  ConformerOptions uff;
  uff.forcefield = "UFF";
  const ConformerResult r = generate_conformer(smiles_to_molblock("CCO"), uff);
  CHECK(r.ok);
  CHECK(r.forcefield_used == "UFF");
  CHECK(r.warning.empty());
  ConformerOptions unknown;
  unknown.forcefield = "NoSuchField";
  const ConformerResult bad = generate_conformer(smiles_to_molblock("CCO"), unknown);
  CHECK_FALSE(bad.ok);
  CHECK(bad.error.find("NoSuchField") != std::string::npos);
}

TEST_CASE("conformer: garbage gives ok=false with a message, never a crash") {
  const std::string ethanol = smiles_to_molblock("CCO");
  std::string wrong_element = ethanol;
  wrong_element.replace(wrong_element.find(" C   0"), 6, " Xx  0");
  std::string bad_bond = ethanol;
  bad_bond.replace(bad_bond.find("  1  2  1"), 9, "  1 99  1");
  const std::pair<const char*, std::string> cases[] = {
      {"empty", ""},
      {"prose", "this is not a molecule\nat all\n"},
      {"header only", "t\n p\n\n"},
      {"counts line garbage", "t\n p\n\nabcdef\n"},
      {"truncated atom block", ethanol.substr(0, ethanol.find(" C ") + 10)},
      {"unknown element", wrong_element},
      {"bond to a missing atom", bad_bond},
      {"V3000", "t\n p\n\n  0  0  0     0  0            999 V3000\nM  V30 BEGIN CTAB\n"},
  };
  for (const auto& [what, text] : cases) {
    INFO(what);
    const ConformerResult r = generate_conformer(text, ConformerOptions{});
    CHECK_FALSE(r.ok);
    CHECK_FALSE(r.error.empty());
    CHECK(r.coords.empty());
  }
  ConformerOptions bad;
  bad.max_steps = -1;
  CHECK_FALSE(generate_conformer(ethanol, bad).ok);
  CHECK_THROWS_AS(smiles_to_molblock("C1CC(("), larmor::Error);
  CHECK_THROWS_AS(smiles_to_molblock(""), larmor::Error);
}

TEST_CASE("conformer: specified stereo is reproduced (tetrahedral centres, double bonds, ring fusions)") {
  // Checked independently of the implementation: the sign of the triple product of a centre's substituents.
  // (R)-butan-2-ol, SMILES C[C@@H](O)CC: atoms C0 C1 O2 C3 C4, H of C1 is atom 8 (after C0's three H).
  for (const bool r_isomer : {true, false}) {
    const std::string mb = smiles_to_molblock(r_isomer ? "C[C@@H](O)CC" : "C[C@H](O)CC");
    const ConformerResult r = generate_conformer(mb, ConformerOptions{});
    REQUIRE(r.ok);
    CHECK(r.stereo_ok);
    // Viewed with H away, O -> C3 (ethyl) -> C0 (methyl) runs clockwise for R: triple product < 0.
    const double t = triple(r, 1, 2, 3, 0);
    CHECK((r_isomer ? t < 0 : t > 0));
  }
  // 2-butene: C0-C1=C2-C3 torsion.
  for (const bool trans : {true, false}) {
    const std::string mb = smiles_to_molblock(trans ? "C/C=C/C" : "C/C=C\\C");
    const ConformerResult r = generate_conformer(mb, ConformerOptions{});
    REQUIRE(r.ok);
    CHECK(r.stereo_ok);
    const double tor = std::fabs(torsion(r, 0, 1, 2, 3));
    CHECK((trans ? tor > 150.0 : tor < 30.0));
  }
  // Steroids: ring-fusion centres the builder cannot set by swapping substituents (repaired after minimisation).
  for (const char* smiles :
       {"C[C@]12CC[C@H]3[C@@H](CC=C4C[C@@H](O)CC[C@@]34C)[C@@H]1CC[C@@H]2O",
        "C[C@H](CCCC(C)C)[C@H]1CC[C@H]2[C@@H]3CC=C4C[C@@H](O)CC[C@]4(C)[C@H]3CC[C@]12C",
        "CC(=O)O[C@@H]1CC[C@]2(C)[C@H]3CC[C@]4(C)[C@@H]([C@H](C)CCCC(C)C)CC[C@H]4[C@@H]3[C@H](Br)C(=O)[C@@]2(O)C1"}) {
    const std::string mb = smiles_to_molblock(smiles);
    const ConformerResult r = generate_conformer(mb, ConformerOptions{});
    INFO(smiles << ": " << r.warning);
    REQUIRE(r.ok);
    CHECK(r.stereo_ok);
  }
}

TEST_CASE("conformer: Molecule -> molblock -> conformer") {
  using larmor::chem::Atom;
  using larmor::chem::Bond;
  using larmor::chem::BondStereo;
  using larmor::chem::BondType;
  using larmor::chem::Chirality;
  using larmor::chem::Molecule;
  auto atom = [](int z, int charge = 0) {
    Atom a;
    a.element = static_cast<uint8_t>(z);
    a.formal_charge = static_cast<int8_t>(charge);
    return a;
  };
  auto bond = [](int a, int b, BondType type = BondType::Single, BondStereo stereo = BondStereo::None) {
    Bond bd;
    bd.a = a;
    bd.b = b;
    bd.type = type;
    bd.stereo = stereo;
    return bd;
  };

  SUBCASE("glycine zwitterion: charges") {
    Molecule m;
    m.id = "glycine";
    m.atoms = {atom(7, +1), atom(6), atom(6), atom(8), atom(8, -1), atom(1), atom(1), atom(1), atom(1), atom(1)};
    m.bonds = {bond(0, 1), bond(1, 2), bond(2, 3, BondType::Double), bond(2, 4), bond(0, 5),
               bond(0, 6), bond(0, 7), bond(1, 8), bond(1, 9)};
    const std::string mb = larmor::chem::molecule_to_molblock(m);
    CHECK(mb.find("M  CHG  2   1   1   5  -1") != std::string::npos);
    OpenBabel::OBConversion conv;
    conv.SetInFormat("mol");
    OpenBabel::OBMol ob;
    REQUIRE(conv.ReadString(&ob, mb));
    CHECK(ob.NumAtoms() == 10);
    CHECK(ob.GetAtom(1)->GetFormalCharge() == 1);
    CHECK(ob.GetAtom(5)->GetFormalCharge() == -1);
    const ConformerResult r = generate_conformer(mb, ConformerOptions{});
    check_geometry("glycine zwitterion", mb, r);
  }
  SUBCASE("benzene with aromatic bonds") {
    Molecule m;
    for (int i = 0; i < 6; ++i) m.atoms.push_back(atom(6));
    for (int i = 0; i < 6; ++i) m.atoms.push_back(atom(1));
    for (int i = 0; i < 6; ++i) m.bonds.push_back(bond(i, (i + 1) % 6, BondType::Aromatic));
    for (int i = 0; i < 6; ++i) m.bonds.push_back(bond(i, 6 + i));
    const std::string mb = larmor::chem::molecule_to_molblock(m);
    const ConformerResult r = generate_conformer(mb, ConformerOptions{});
    check_geometry("benzene from Molecule", mb, r);
    for (size_t i = 0; i < 6; ++i)
      CHECK(dist(r.coords[i], r.coords[(i + 1) % 6]) == doctest::Approx(1.39).epsilon(0.02));
  }
  SUBCASE("chirality convention: CHFClBr") {
    // Atoms C0 F1 Cl2 Br3 H4. Clockwise: with H away from the viewer F -> Cl -> Br run clockwise, i.e. the
    // triple product (F, Cl, Br) about C is negative.
    for (const Chirality chirality : {Chirality::Clockwise, Chirality::CounterClockwise}) {
      Molecule m;
      m.atoms = {atom(6), atom(9), atom(17), atom(35), atom(1)};
      m.atoms[0].chirality = chirality;
      m.bonds = {bond(0, 1), bond(0, 2), bond(0, 3), bond(0, 4)};
      const ConformerResult r = generate_conformer(larmor::chem::molecule_to_molblock(m), ConformerOptions{});
      REQUIRE(r.ok);
      CHECK(r.stereo_ok);
      const double t = triple(r, 0, 1, 2, 3);
      CHECK((chirality == Chirality::Clockwise ? t < 0 : t > 0));
    }
  }
  SUBCASE("double bond convention: 2-butene") {
    // C0-C1=C2-C3 + 8 H, single bonds stored from the double-bond atom (C1->C0, C2->C3): 'C1/C0' == 'C0\\C1', so
    // C0\\C1=C2/C3 (equal marks) is cis and different marks are trans.
    for (const bool same : {true, false}) {
      Molecule m;
      for (int i = 0; i < 4; ++i) m.atoms.push_back(atom(6));
      for (int i = 0; i < 8; ++i) m.atoms.push_back(atom(1));
      m.bonds = {bond(1, 0, BondType::Single, BondStereo::Up), bond(1, 2, BondType::Double),
                 bond(2, 3, BondType::Single, same ? BondStereo::Up : BondStereo::Down)};
      const int h_owner[] = {0, 0, 0, 1, 2, 3, 3, 3};
      for (int i = 0; i < 8; ++i) m.bonds.push_back(bond(h_owner[i], 4 + i));
      const std::string mb = larmor::chem::molecule_to_molblock(m);
      const ConformerResult r = generate_conformer(mb, ConformerOptions{});
      check_geometry("2-butene from Molecule", mb, r);
      CHECK(r.stereo_ok);
      const double tor = std::fabs(torsion(r, 0, 1, 2, 3));
      CHECK((same ? tor < 30.0 : tor > 150.0));
    }
  }
  SUBCASE("bad molecules throw") {
    Molecule empty;
    CHECK_THROWS_AS(larmor::chem::molecule_to_molblock(empty), larmor::Error);
    Molecule dangling;
    dangling.atoms = {atom(6)};
    dangling.bonds = {bond(0, 3)};
    CHECK_THROWS_AS(larmor::chem::molecule_to_molblock(dangling), larmor::Error);
  }
}

TEST_CASE("conformer: time limit and step limit are honoured") {
  const std::string mb = smiles_to_molblock("CC(C)(C)c1ccc(cc1)C(=O)N[C@@H](Cc1ccccc1)C(=O)OC");
  ConformerOptions few;
  few.max_steps = 5;
  few.attempts = 1;
  const ConformerResult r = generate_conformer(mb, few);
  if (r.ok) CHECK(r.steps <= 5 * 3);  // up to two stereo repair rounds re-minimise
  ConformerOptions rushed;
  rushed.time_limit_s = 1e-9;
  const ConformerResult t = generate_conformer(mb, rushed);
  CHECK((t.ok ? t.hit_time_limit : !t.error.empty()));
}

TEST_CASE("conformer: E/Z and R/S survive SMILES -> Molecule (ob_molecule) -> molblock -> conformer") {
  // The two modules' stereo conventions meet here: ob_molecule fills BondStereo/Chirality, molecule_to_molblock
  // writes them for the builder. F/C=C/F is trans, F/C=C\F cis, whichever way the bonds are stored.
  for (const bool trans : {true, false}) {
    for (const char* smiles : {trans ? "F/C=C/F" : "F/C=C\\F", trans ? "C(\\F)=C/F" : "C(/F)=C/F"}) {
      larmor::chem::Molecule m = larmor::chem::molecule_from_smiles(smiles, "ez");
      const ConformerResult r = generate_conformer(molecule_to_molblock(m), ConformerOptions{});
      INFO(smiles);
      REQUIRE(r.ok);
      // F-C=C-F: find the F atoms and their carbons.
      std::vector<int> f, c;
      for (int i = 0; i < m.num_atoms(); ++i) {
        if (m.atoms[i].element == 9) f.push_back(i);
        if (m.atoms[i].element == 6) c.push_back(i);
      }
      REQUIRE(f.size() == 2);
      REQUIRE(c.size() == 2);
      auto bonded = [&](int a, int b) {
        for (const auto& bd : m.bonds)
          if ((bd.a == a && bd.b == b) || (bd.a == b && bd.b == a)) return true;
        return false;
      };
      int c0 = bonded(f[0], c[0]) ? c[0] : c[1], c1 = c0 == c[0] ? c[1] : c[0];
      const double tor = std::fabs(torsion(r, f[0], c0, c1, f[1]));
      CHECK((trans ? tor > 150.0 : tor < 30.0));
    }
  }
  for (const bool r_isomer : {true, false}) {
    larmor::chem::Molecule m = larmor::chem::molecule_from_smiles(r_isomer ? "C[C@@H](O)CC" : "C[C@H](O)CC", "rs");
    const ConformerResult r = generate_conformer(molecule_to_molblock(m), ConformerOptions{});
    REQUIRE(r.ok);
    const double t = triple(r, 1, 2, 3, 0);
    CHECK((r_isomer ? t < 0 : t > 0));
  }
}
