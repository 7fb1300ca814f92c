// larmor::ShiftPredictor and the predict output formats: with the tiny model of tests/chem/shift_fixtures.h
// (trained for a few seconds on the hand-built chain dataset, once per process), predictions from SMILES
// give one 13C per carbon and one 1H per hydrogen, equivalent atoms identical shifts, the same numbers on
// every call, bad records of a multi-record input reported while the others are predicted, CSV with the
// documented columns and 0-based indices, and clear errors for a missing or foreign model file.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "chem/ob_conformer.h"
#include "chem/ob_molecule.h"
#include "chem/ob_predict.h"
#include "chem/shift_training.h"
#include "engine/error.h"
#include "tests/chem/shift_fixtures.h"
#include "tests/test_util.h"

using namespace larmor;
using namespace larmor::chem;

namespace {

std::vector<const AtomShift*> of(const ShiftPrediction& p, Nucleus n) {
  std::vector<const AtomShift*> v;
  for (const AtomShift& a : p.atoms)
    if (a.nucleus == n) v.push_back(&a);
  return v;
}

}  // namespace

TEST_CASE("predict: one 13C per carbon, one 1H per H, equivalent atoms share the shift") {
  ShiftPredictor pred(test::tiny_trained_model());
  SUBCASE("ethanol") {
    const ShiftPrediction p = pred.predict_smiles("CCO", Solvent::CDCl3);
    CHECK(p.conformer_generated);
    REQUIRE(p.molecule.has_3d());
    const auto c = of(p, Nucleus::C13), h = of(p, Nucleus::H1);
    REQUIRE(c.size() == 2);
    REQUIRE(h.size() == 6);
    CHECK(c[0]->atom == 0);
    CHECK(c[1]->atom == 1);
    for (const AtomShift* a : h) {
      CHECK(p.molecule.atoms[a->atom].element == 1);
      CHECK(a->heavy == p.molecule.atoms[a->atom].heavy);
      CHECK(std::isfinite(a->shift_ppm));
    }
    // the three methyl H (on atom 0) are one symmetry class: identical shifts, listed together
    std::vector<const AtomShift*> methyl;
    for (const AtomShift* a : h)
      if (a->heavy == 0) methyl.push_back(a);
    REQUIRE(methyl.size() == 3);
    for (const AtomShift* a : methyl) {
      CHECK(a->shift_ppm == methyl[0]->shift_ppm);
      CHECK(a->equivalent.size() == 3);
    }
    // groups: 2 carbon classes + CH3, CH2, OH hydrogens
    int c_groups = 0, h_groups = 0;
    for (const ShiftGroup& g : p.groups) (g.nucleus == Nucleus::C13 ? c_groups : h_groups)++;
    CHECK(c_groups == 2);
    CHECK(h_groups == 3);
    CHECK(p.groups[0].environment == "CH3");
    CHECK(format_table(p).find("CH3") != std::string::npos);
  }
  SUBCASE("toluene 13C only") {
    const ShiftPrediction p = pred.predict_smiles("Cc1ccccc1", Solvent::Unknown, parse_nucleus_set("13C"));
    REQUIRE(p.atoms.size() == 7);
    for (const AtomShift& a : p.atoms) CHECK(a.nucleus == Nucleus::C13);
    CHECK(p.atoms[2].shift_ppm == p.atoms[6].shift_ppm);  // ortho carbons
    CHECK(p.atoms[3].shift_ppm == p.atoms[5].shift_ppm);  // meta carbons
    CHECK(p.atoms[2].equivalent == std::vector<int32_t>{2, 6});
    CHECK(atom_environment(p.molecule, 2) == "aromatic CH");
    CHECK(atom_environment(p.molecule, 1) == "aromatic C");
  }
  SUBCASE("environments") {
    const Molecule m = molecule_from_smiles("CC(=O)C=CC#C", "env");
    CHECK(atom_environment(m, 0) == "CH3");
    CHECK(atom_environment(m, 1) == "C=O");
    CHECK(atom_environment(m, 2) == "O");
    CHECK(atom_environment(m, 3) == "=CH");
    CHECK(atom_environment(m, 6) == "#CH");
  }
}

TEST_CASE("predict: deterministic; given coordinates are used as they are") {
  ShiftPredictor a(test::tiny_trained_model()), b(test::tiny_trained_model());
  const ShiftPrediction p = a.predict_smiles("CC(C)Cc1ccc(cc1)C(C)C(=O)O");  // ibuprofen
  const ShiftPrediction q = b.predict_smiles("CC(C)Cc1ccc(cc1)C(C)C(=O)O");
  const ShiftPrediction r = a.predict_smiles("CC(C)Cc1ccc(cc1)C(C)C(=O)O");
  REQUIRE(p.atoms.size() == q.atoms.size());
  for (size_t i = 0; i < p.atoms.size(); ++i) {
    CHECK(p.atoms[i].raw_ppm == q.atoms[i].raw_ppm);
    CHECK(p.atoms[i].raw_ppm == r.atoms[i].raw_ppm);
  }
  // the generated conformer fed back in gives the same shifts without a new conformer
  const ShiftPrediction s = a.predict(p.molecule);
  CHECK_FALSE(s.conformer_generated);
  REQUIRE(s.atoms.size() == p.atoms.size());
  for (size_t i = 0; i < p.atoms.size(); ++i) CHECK(s.atoms[i].raw_ppm == p.atoms[i].raw_ppm);
}

TEST_CASE("predict: multi-record input with a bad record") {
  ShiftPredictor pred(test::tiny_trained_model());
  auto run = [&](MoleculeReader reader, std::vector<std::string>& names, std::vector<int64_t>& bad) {
    MoleculeRecord rec;
    while (reader.next(rec)) {
      try {
        if (!rec.ok()) throw Error(rec.error);
        names.push_back(prediction_name(pred.predict(*rec.molecule)));
      } catch (const Error& e) {
        bad.push_back(rec.number);
        CHECK(std::string(e.what()).size() > 0);
      }
    }
  };
  SUBCASE("SMILES") {
    std::vector<std::string> names;
    std::vector<int64_t> bad;
    run(MoleculeReader::from_string("mols.smi", "CCO ethanol\nC1CC(C broken\nc1ccccc1 benzene\n"), names, bad);
    CHECK(names == std::vector<std::string>{"ethanol", "benzene"});
    CHECK(bad == std::vector<int64_t>{2});
  }
  SUBCASE("SDF") {
    std::string sdf = smiles_to_molblock("CCO");
    sdf += "$$$$\nbroken\n  x\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\nnot an atom line\n$$$$\n";
    sdf += smiles_to_molblock("CC(=O)O") + "$$$$\n";
    std::vector<std::string> names;
    std::vector<int64_t> bad;
    run(MoleculeReader::from_string("mols.sdf", sdf, MoleculeFormat::Sdf), names, bad);
    CHECK(names.size() == 2);
    CHECK(bad == std::vector<int64_t>{2});
  }
}

TEST_CASE("predict: CSV columns and 0-based indices, JSON and SDF output") {
  ShiftPredictor pred(test::tiny_trained_model());
  Molecule m = molecule_from_smiles("CCO", "x");
  m.title = "ethanol";
  const ShiftPrediction p = pred.predict(m, Solvent::DMSO);
  CHECK(csv_header() == "molecule,atom_index,element,nucleus,shift_ppm,equivalent_atoms\n");
  std::istringstream rows(format_csv_rows(p));
  std::string line;
  std::set<int> c_idx, h_idx;
  int n = 0;
  while (std::getline(rows, line)) {
    ++n;
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, ',')) f.push_back(x);
    REQUIRE(f.size() == 6);
    CHECK(f[0] == "ethanol");
    const int idx = std::stoi(f[1]);
    if (f[3] == "13C") {
      CHECK(f[2] == "C");
      c_idx.insert(idx);
    } else {
      CHECK(f[3] == "1H");
      CHECK(f[2] == "H");
      h_idx.insert(idx);
    }
    CHECK(std::isfinite(std::stod(f[4])));
    CHECK(f[5].find(std::to_string(idx)) != std::string::npos);
  }
  CHECK(n == 8);
  CHECK(c_idx == std::set<int>{0, 1});
  CHECK(h_idx == std::set<int>{3, 4, 5, 6, 7, 8});  // added H follow the heavy atoms

  const std::string js = format_json(p);
  CHECK(js.find("\"molecule\":\"ethanol\"") != std::string::npos);
  CHECK(js.find("\"solvent\":\"DMSO-d6\"") != std::string::npos);
  const std::string sdf = format_sdf(p);
  CHECK(sdf.find("> <Spectrum 13C 0>") != std::string::npos);
  CHECK(sdf.find("> <Spectrum 1H 0>") != std::string::npos);
  CHECK(sdf.find(";0.0Q;0|") != std::string::npos);  // methyl carbon: quartet, atom 0
  CHECK(sdf.rfind("$$$$\n") == sdf.size() - 5);
  // the record reads back with 3-D coordinates
  const Molecule back = molecule_from_molblock(sdf.substr(0, sdf.find("M  END") + 7), "back");
  CHECK(back.num_atoms() == 9);
  CHECK(back.has_3d());
}

TEST_CASE("predict: missing or foreign model file; nucleus without a head") {
  CHECK_THROWS_WITH_AS(ShiftPredictor("/nonexistent/model.safetensors"),
                       doctest::Contains("/nonexistent/model.safetensors"), Error);
  test::TempDir dir("predict_bad");
  {
    std::ofstream f(dir.file("junk.safetensors"));
    f << "not a checkpoint";
  }
  CHECK_THROWS_AS(ShiftPredictor(dir.file("junk.safetensors")), Error);
  ShiftPredictor pred(test::tiny_trained_model());
  CHECK_THROWS_WITH_AS(pred.predict_smiles("CF", Solvent::Unknown, parse_nucleus_set("19F")), doctest::Contains("19F"),
                       Error);
  CHECK_THROWS_AS(parse_nucleus_set("13X"), Error);
}

TEST_CASE("predict: SVG stick spectrum has one stick per symmetry group") {
  ShiftPredictor pred(test::tiny_trained_model());
  const ShiftPrediction p = pred.predict_smiles("CCCCC", Solvent::CDCl3);  // pentane: 3 carbon classes
  // each stick: <line ... y1=".." ... y2=".." class="stick"><title>LABEL: PPM ppm</title>
  struct Stick {
    std::string title;
    double height;
  };
  auto sticks_of = [](const std::string& svg) {
    std::vector<Stick> v;
    const std::string key = "class=\"stick\"><title>";
    for (size_t at = svg.find(key); at != std::string::npos; at = svg.find(key, at + 1)) {
      const size_t begin = svg.rfind("<line", at);
      auto num = [&](const std::string& a) { return std::stod(svg.substr(svg.find(a + "=\"", begin) + a.size() + 2)); };
      const size_t t0 = at + key.size();
      v.push_back({svg.substr(t0, svg.find("</title>", t0) - t0), num("y1") - num("y2")});
    }
    return v;
  };
  for (Nucleus n : {Nucleus::C13, Nucleus::H1}) {
    std::vector<const ShiftGroup*> groups;
    for (const ShiftGroup& g : p.groups)
      if (g.nucleus == n) groups.push_back(&g);
    const std::vector<Stick> s = sticks_of(format_svg(p, n));
    REQUIRE(s.size() == groups.size());
    for (size_t k = 0; k < s.size(); ++k) {
      // sticks in group order; height proportional to the atoms in the group
      CHECK(s[k].height / s[0].height ==
            doctest::Approx(static_cast<double>(groups[k]->atoms.size()) / static_cast<double>(groups[0]->atoms.size()))
                .epsilon(0.005));  // coordinates are written to 0.1 px
      const double ppm = std::stod(s[k].title.substr(s[k].title.find(": ") + 2));
      CHECK(ppm == doctest::Approx(groups[k]->shift_ppm).epsilon(0.01));
    }
    if (n == Nucleus::C13) {
      REQUIRE(s.size() == 3);
      CHECK(s[0].title.rfind("C0,C4: ", 0) == 0);
      CHECK(s[1].title.rfind("C1,C3: ", 0) == 0);
      CHECK(s[2].title.rfind("C2: ", 0) == 0);
    } else {
      CHECK(s[0].title.rfind("C0,C4 (6H): ", 0) == 0);  // 1H labelled by heavy atom, as format_table
    }
  }
  const ShiftPrediction c_only = pred.predict_smiles("CCCCC", Solvent::CDCl3, parse_nucleus_set("13C"));
  CHECK_THROWS_WITH_AS(format_svg(c_only, Nucleus::H1), doctest::Contains("not requested"), Error);
}
