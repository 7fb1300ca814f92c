// Shift-model data (chem/shift_data): datasets built by hand (ethanol, toluene, chloromethanol, chains of
// random length), so these run without Open Babel. Token layout and padding, centred coordinates, the
// target rules of shift_data.h (assigned 13C per atom, assigned 1H per heavy atom with expanded and
// diastereotopic shifts, unassigned 13C per atom / per symmetry class / per multiplicity class, the 1H
// counting rules and their ambiguity), the standardiser, and the sampler (determinism, B1 + B2 mixing,
// padding reduced by bucketing). On data/nmr8k.safetensors when present: every target sits on an atom of the
// right element, and the usable counts and skip reasons are reported.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include "chem/features.h"
#include "chem/shift_data.h"
#include "engine/error.h"

using namespace larmor;
using namespace larmor::chem;

namespace {

int32_t add_atom(Molecule& m, int z, int heavy, std::array<float, 3> xyz, int sym) {
  Atom a;
  a.element = static_cast<uint8_t>(z);
  a.heavy = heavy < 0 ? m.num_atoms() : heavy;
  a.symmetry_class = sym;
  const int32_t i = m.num_atoms();
  m.atoms.push_back(a);
  m.coords.push_back(xyz);
  if (heavy >= 0) {
    m.bonds.push_back({heavy, i});
    ++m.atoms[heavy].num_h;
    ++m.atoms[heavy].degree;
    m.atoms[i].degree = 1;
  }
  return i;
}

// Ethanol: C0 (CH3) C1 (CH2) O2, H3 H4 H5 on C0, H6 H7 on C1, H8 on O2. Off-centre coordinates.
Molecule ethanol() {
  Molecule m;
  m.id = "ethanol";
  add_atom(m, 6, -1, {5.0f, 1.0f, 2.0f}, 0);
  add_atom(m, 6, -1, {6.5f, 1.0f, 2.0f}, 1);
  add_atom(m, 8, -1, {7.0f, 2.3f, 2.0f}, 2);
  m.bonds = {{0, 1}, {1, 2}};
  for (int k = 0; k < 3; ++k) add_atom(m, 1, 0, {4.6f, 1.0f + 0.5f * k, 2.9f}, 3);
  for (int k = 0; k < 2; ++k) add_atom(m, 1, 1, {6.8f, 0.4f, 2.0f + 0.9f * (2 * k - 1)}, 4);
  add_atom(m, 1, 2, {7.9f, 2.3f, 2.0f}, 5);
  return m;
}

// Toluene: C0 methyl, C1 ipso, C2..C6 ring (C2/C6 ortho, C3/C5 meta, C4 para), then 8 H.
Molecule toluene() {
  Molecule m;
  m.id = "toluene";
  const int cls[] = {0, 1, 2, 3, 4, 3, 2};
  for (int i = 0; i < 7; ++i)
    add_atom(m, 6, -1, {std::cos(1.0f * i), std::sin(1.0f * i), 0.1f * i}, cls[i]);
  m.bonds = {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}, {6, 1}};
  for (int k = 0; k < 3; ++k) add_atom(m, 1, 0, {-1.0f, 0.3f * k, 0.0f}, 5);
  const int hcls[] = {0, 0, 6, 7, 8, 7, 6};
  for (int c = 2; c <= 6; ++c) add_atom(m, 1, c, {2.0f * std::cos(1.0f * c), 2.0f * std::sin(1.0f * c), 0.0f}, hcls[c]);
  return m;
}

// Chloromethanol: C0 O1 Cl2, H3 H4 on C0, H5 on O1.
Molecule chloromethanol() {
  Molecule m;
  m.id = "chloromethanol";
  add_atom(m, 6, -1, {0, 0, 0}, 0);
  add_atom(m, 8, -1, {1.4f, 0, 0}, 1);
  add_atom(m, 17, -1, {-1.7f, 0, 0}, 2);
  m.bonds = {{0, 1}, {0, 2}};
  for (int k = 0; k < 2; ++k) add_atom(m, 1, 0, {0, 1.0f, 0.5f - k}, 3);
  add_atom(m, 1, 1, {1.8f, 0.9f, 0}, 4);
  return m;
}

PeakSet peaks(Nucleus n, std::vector<float> shifts, std::vector<int8_t> mult = {}) {
  PeakSet p;
  p.nucleus = n;
  p.shifts = std::move(shifts);
  p.mult = mult.empty() ? std::vector<int8_t>(p.shifts.size(), kMultUnknown) : std::move(mult);
  return p;
}

DatasetEntry entry(Molecule m, Split split = Split::Train) {
  DatasetEntry e;
  e.mol = std::move(m);
  e.split = split;
  return e;
}

struct Seg {
  std::vector<int64_t> index;
  std::vector<float> target;
};

// Segments of one ShiftTargets as (index, target) lists.
std::vector<Seg> segments_of(const ShiftTargets& t) {
  std::vector<Seg> out;
  if (t.size() == 0) return out;
  const auto idx = t.index.to_vector<int64_t>();
  const auto tgt = t.target.to_vector<float>();
  const auto off = t.offsets.to_vector<int32_t>();
  for (size_t s = 0; s + 1 < off.size(); ++s)
    out.push_back({std::vector<int64_t>(idx.begin() + off[s], idx.begin() + off[s + 1]),
                   std::vector<float>(tgt.begin() + off[s], tgt.begin() + off[s + 1])});
  return out;
}

std::vector<float> ppm(const ShiftStandardizer& st, Nucleus n, const std::vector<float>& z) {
  std::vector<float> out;
  for (float v : z) out.push_back(static_cast<float>(st.to_ppm(static_cast<int>(n), v)));
  return out;
}

void check_close(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-5));
}

// A chain of n carbons (no H, no bonds needed), each its own symmetry class, at random-ish positions.
Molecule chain(int n, int id) {
  Molecule m;
  m.id = "chain" + std::to_string(id);
  for (int i = 0; i < n; ++i) add_atom(m, 6, -1, {1.5f * i, 0.1f * (id % 7), 0.0f}, i);
  return m;
}

std::string data_file() { return std::string(LARMOR_SOURCE_DIR) + "/data/nmr8k.safetensors"; }

}  // namespace

TEST_CASE("shift data: token layout, padding, centred coordinates, assigned 13C and 1H") {
  Dataset ds;
  DatasetEntry e = entry(ethanol());
  e.solvent = Solvent::CDCl3;
  e.assigned = {{0, Nucleus::C13, 18.0f, 1}, {1, Nucleus::C13, 58.0f, 1}, {0, Nucleus::H1, 1.2f, 1},
                {1, Nucleus::H1, 3.7f, 1},   {1, Nucleus::H1, 3.6f, 1},   {2, Nucleus::H1, 2.5f, 1}};
  ds.entries.push_back(e);
  DatasetEntry t = entry(toluene());
  t.assigned = {{0, Nucleus::C13, 21.4f, 1}};
  ds.entries.push_back(t);
  ShiftStandardizer st;
  st.mean = {3.0, 100.0, -120.0, 0.0};
  st.std = {2.0, 50.0, 40.0, 30.0};
  ShiftDataset sd(ds, Split::Train, st);
  REQUIRE(sd.size() == 2);
  CHECK(sd.stats().labelled == 2);

  const ShiftBatch b = sd.make_batch({0, 1});
  const int64_t N = 15 + 2;  // toluene: 15 atoms
  REQUIRE(b.batch_size() == 2);
  REQUIRE(b.seq_len() == N);
  CHECK(b.entries == std::vector<int64_t>{0, 1});
  CHECK(b.tokens.dtype() == DType::I32);
  CHECK(b.key_mask.dtype() == DType::I32);
  CHECK(b.solvent.dtype() == DType::I32);
  CHECK(b.coords.shape() == Shape{2, N, 3});
  const auto tok = b.tokens.to_vector<int32_t>();
  const auto mask = b.key_mask.to_vector<int32_t>();
  const auto xyz = b.coords.to_vector<float>();
  // ethanol row: [CLS] C C O H*6 [SEP] then padding
  const std::vector<int32_t> eth = {kTokenCls, 4, 4, 6, 8, 8, 8, 8, 8, 8, kTokenSep};
  for (int64_t n = 0; n < N; ++n) {
    CHECK(tok[n] == (n < 11 ? eth[n] : kTokenPad));
    CHECK(mask[n] == (n < 11 ? 1 : 0));
    CHECK(tok[N + n] == (n == 0 ? kTokenCls : n == 16 ? kTokenSep : n <= 7 ? 4 : 8));
    CHECK(mask[N + n] == 1);
  }
  // coordinates: atoms centred, [CLS]/[SEP]/padding at the origin, shape of the molecule kept
  const Molecule mol = ethanol();
  for (int r = 0; r < 2; ++r) {
    const int atoms = r == 0 ? 9 : 15;
    double sum[3] = {0, 0, 0};
    for (int i = 0; i < atoms; ++i)
      for (int k = 0; k < 3; ++k) sum[k] += xyz[(r * N + i + 1) * 3 + k];
    for (int k = 0; k < 3; ++k) CHECK(std::abs(sum[k]) < 1e-4);
    for (int k = 0; k < 3; ++k) {
      CHECK(xyz[(r * N + 0) * 3 + k] == 0.0f);
      CHECK(xyz[(r * N + atoms + 1) * 3 + k] == 0.0f);
      for (int64_t n = atoms + 2; n < N; ++n) CHECK(xyz[(r * N + n) * 3 + k] == 0.0f);
    }
  }
  CHECK(xyz[(0 * N + 2) * 3 + 0] - xyz[(0 * N + 1) * 3 + 0] == doctest::Approx(mol.coords[1][0] - mol.coords[0][0]));
  CHECK(b.solvent.to_vector<int32_t>() == std::vector<int32_t>{static_cast<int32_t>(Solvent::CDCl3), 0});

  // 13C: segments of size 1 on the carbon tokens, global index b * N + atom + 1
  const auto c13 = segments_of(b.assigned[1]);
  REQUIRE(c13.size() == 3);
  CHECK(c13[0].index == std::vector<int64_t>{1});
  CHECK(c13[1].index == std::vector<int64_t>{2});
  CHECK(c13[2].index == std::vector<int64_t>{N + 1});
  check_close(ppm(st, Nucleus::C13, c13[0].target), {18.0f});
  check_close(ppm(st, Nucleus::C13, c13[1].target), {58.0f});
  check_close(ppm(st, Nucleus::C13, c13[2].target), {21.4f});
  CHECK(c13[0].target[0] == doctest::Approx((18.0 - 100.0) / 50.0));
  // 1H: per heavy atom its H tokens; CH3 one shift x3, diastereotopic CH2 both shifts, OH one
  const auto h1 = segments_of(b.assigned[0]);
  REQUIRE(h1.size() == 3);
  CHECK(h1[0].index == std::vector<int64_t>{4, 5, 6});
  check_close(ppm(st, Nucleus::H1, h1[0].target), {1.2f, 1.2f, 1.2f});
  CHECK(h1[1].index == std::vector<int64_t>{7, 8});
  check_close(ppm(st, Nucleus::H1, h1[1].target), {3.6f, 3.7f});
  CHECK(h1[2].index == std::vector<int64_t>{9});
  check_close(ppm(st, Nucleus::H1, h1[2].target), {2.5f});
  for (int n = 0; n < kNumNuclei; ++n) CHECK(b.unassigned[n].size() == 0);
  CHECK(b.assigned[2].size() == 0);
  CHECK_FALSE(b.assigned[2].index.defined());

  // the same sample twice, and bad requests
  const ShiftBatch b2 = sd.make_batch({1, 1});
  CHECK(b2.seq_len() == N);
  CHECK(segments_of(b2.assigned[1])[1].index == std::vector<int64_t>{N + 1});
  CHECK_THROWS_AS(sd.make_batch({}), Error);
  CHECK_THROWS_AS(sd.make_batch({2}), Error);
  CHECK_THROWS_AS(sd.make_batch({-1}), Error);
}

TEST_CASE("shift data: 1H assigned counts that cannot be expanded are skipped and counted") {
  Dataset ds;
  DatasetEntry e = entry(ethanol());
  e.assigned = {{0, Nucleus::H1, 1.1f, 1}, {0, Nucleus::H1, 1.3f, 1},  // 2 shifts on a CH3
                {2, Nucleus::H1, 2.4f, 1}, {2, Nucleus::H1, 2.6f, 1},  // 2 shifts on an OH
                {1, Nucleus::H1, 3.6f, 1}};                            // kept
  ds.entries.push_back(e);
  DatasetEntry bad = entry(ethanol());
  bad.assigned = {{2, Nucleus::C13, 60.0f, 1}};  // 13C on the oxygen
  ds.entries.push_back(bad);
  ShiftDataset sd(ds, Split::Train, ShiftStandardizer{});
  REQUIRE(sd.size() == 1);
  const auto& c = sd.stats().counts;
  CHECK(c.at("1H assigned: heavy atom skipped, shift count does not divide H count") == 1);
  CHECK(c.at("1H assigned: heavy atom skipped, more shifts than H") == 1);
  CHECK(c.at("13C assigned: skipped, atom of another element") == 1);
  CHECK(c.at("entry skipped: no usable targets") == 1);
  const auto h1 = segments_of(sd.make_batch({0}).assigned[0]);
  REQUIRE(h1.size() == 1);
  CHECK(h1[0].index == std::vector<int64_t>{7, 8});
  check_close(h1[0].target, {3.6f, 3.6f});

  DatasetEntry outside = entry(ethanol());
  outside.assigned = {{42, Nucleus::C13, 10.0f, 1}};
  ds.entries.push_back(outside);
  CHECK_THROWS_AS(ShiftDataset(ds, Split::Train, ShiftStandardizer{}), Error);
}

TEST_CASE("shift data: unassigned 13C per atom, per symmetry class, per multiplicity class") {
  const Molecule tol = toluene();
  SUBCASE("symmetric carbons collapsed: 7 carbons, 5 peaks -> 5 representatives, split by multiplicity") {
    const PeakSet p = peaks(Nucleus::C13, {129.0f, 21.4f, 137.8f, 128.2f, 125.3f}, {1, 3, 0, 1, 1});
    PeakSetMatch m = match_peak_set(tol, p, true);
    CHECK(m.rule == PeakRule::PerSymmetryClass);
    REQUIRE(m.atoms.size() == 3);  // C (0 H), CH, CH3
    CHECK(m.mult == std::vector<int8_t>{0, 1, 3});
    CHECK(m.atoms[0] == std::vector<int32_t>{1});
    CHECK(m.shifts[0] == std::vector<float>{137.8f});
    CHECK(m.atoms[1] == std::vector<int32_t>{2, 3, 4});
    CHECK(m.shifts[1] == std::vector<float>{125.3f, 128.2f, 129.0f});
    CHECK(m.atoms[2] == std::vector<int32_t>{0});
    CHECK(m.shifts[2] == std::vector<float>{21.4f});
    // without the split: one segment over the 5 representatives
    m = match_peak_set(tol, p, false);
    REQUIRE(m.atoms.size() == 1);
    CHECK(m.atoms[0] == std::vector<int32_t>{0, 1, 2, 3, 4});
    CHECK(m.shifts[0] == std::vector<float>{21.4f, 125.3f, 128.2f, 129.0f, 137.8f});
    CHECK(m.mult == std::vector<int8_t>{kMultUnknown});
  }
  SUBCASE("every carbon listed") {
    const PeakSet p = peaks(Nucleus::C13, {21.4f, 137.8f, 129.0f, 129.0f, 128.2f, 128.2f, 125.3f}, {3, 0, 1, 1, 1, 1, 1});
    const PeakSetMatch m = match_peak_set(tol, p, true);
    CHECK(m.rule == PeakRule::PerAtom);
    REQUIRE(m.atoms.size() == 3);
    CHECK(m.atoms[1] == std::vector<int32_t>{2, 3, 4, 5, 6});
  }
  SUBCASE("multiplicities that disagree or are unknown give one segment with a note") {
    PeakSetMatch m = match_peak_set(tol, peaks(Nucleus::C13, {21.4f, 137.8f, 129.0f, 128.2f, 125.3f}, {3, 1, 1, 1, 1}));
    CHECK(m.rule == PeakRule::PerSymmetryClass);
    CHECK(m.atoms.size() == 1);
    CHECK(m.reason == "multiplicity classes disagree with H counts (one segment)");
    m = match_peak_set(tol, peaks(Nucleus::C13, {21.4f, 137.8f, 129.0f, 128.2f, 125.3f}));
    CHECK(m.atoms.size() == 1);
    CHECK(m.reason == "multiplicities unknown (one segment)");
  }
  SUBCASE("counts that match neither carbons nor classes are skipped") {
    CHECK(match_peak_set(tol, peaks(Nucleus::C13, {1, 2, 3, 4, 5, 6})).reason ==
          "peaks between #symmetry classes and #atoms (partly collapsed)");
    CHECK(match_peak_set(tol, peaks(Nucleus::C13, {1, 2, 3})).reason ==
          "fewer peaks than symmetry classes (incomplete list)");
    CHECK(match_peak_set(tol, peaks(Nucleus::C13, {1, 2, 3, 4, 5, 6, 7, 8})).reason == "more peaks than atoms");
    CHECK(match_peak_set(tol, peaks(Nucleus::F19, {1})).reason == "molecule has no atom of the element");
    CHECK(match_peak_set(tol, peaks(Nucleus::C13, {})).reason == "empty peak set");
  }
  SUBCASE("in a batch: unassigned segments on carbon tokens") {
    Dataset ds;
    DatasetEntry e = entry(toluene());
    e.peak_sets = {peaks(Nucleus::C13, {129.0f, 21.4f, 137.8f, 128.2f, 125.3f}, {1, 3, 0, 1, 1})};
    e.peak_sets[0].solvent = Solvent::DMSO;
    ds.entries.push_back(e);
    ShiftDataset sd(ds, Split::Train, ShiftStandardizer{});
    REQUIRE(sd.size() == 1);
    CHECK_FALSE(sd.sample(0).labelled);
    const ShiftBatch b = sd.make_batch({0});
    const auto segs = segments_of(b.unassigned[1]);
    REQUIRE(segs.size() == 3);
    CHECK(segs[1].index == std::vector<int64_t>{3, 4, 5});
    check_close(segs[1].target, {125.3f, 128.2f, 129.0f});
    CHECK(b.assigned[1].size() == 0);
    // unknown entry solvent, unlabelled: the peak set's solvent
    CHECK(b.solvent.to_vector<int32_t>() == std::vector<int32_t>{static_cast<int32_t>(Solvent::DMSO)});
    ShiftDataOptions o;
    o.use_solvent = false;
    CHECK(ShiftDataset(ds, Split::Train, ShiftStandardizer{}, o).make_batch({0}).solvent.to_vector<int32_t>() ==
          std::vector<int32_t>{0});
    o = {};
    o.split_13c_multiplicity = false;
    CHECK(segments_of(ShiftDataset(ds, Split::Train, ShiftStandardizer{}, o).make_batch({0}).unassigned[1]).size() == 1);
  }
}

TEST_CASE("shift data: unassigned 1H counting rules") {
  const Molecule eth = ethanol();  // 6 H, 5 C-H, 3 H-bearing heavy atoms, 2 carbons with H
  auto rule = [&](const Molecule& m, int n) {
    std::vector<float> s;
    for (int i = 0; i < n; ++i) s.push_back(1.0f + 0.5f * static_cast<float>(i));
    return match_peak_set(m, peaks(Nucleus::H1, s));
  };
  PeakSetMatch m = rule(eth, 6);
  CHECK(m.rule == PeakRule::PerH);
  CHECK(m.atoms[0] == std::vector<int32_t>{3, 4, 5, 6, 7, 8});
  m = rule(eth, 5);
  CHECK(m.rule == PeakRule::PerCH);
  CHECK(m.atoms[0] == std::vector<int32_t>{3, 4, 5, 6, 7});
  m = rule(eth, 3);
  CHECK(m.rule == PeakRule::PerHeavyAtom);
  CHECK(m.atoms[0] == std::vector<int32_t>{3, 6, 8});
  CHECK_FALSE(m.ambiguous);  // the class representatives are the same atoms
  m = rule(eth, 2);
  CHECK(m.rule == PeakRule::PerCHeavyAtom);
  CHECK(m.atoms[0] == std::vector<int32_t>{3, 6});
  CHECK(rule(eth, 4).reason == "peak count matches no counting rule");
  CHECK(rule(eth, 1).reason == "fewer peaks than C-H symmetry classes (incomplete list)");
  CHECK(rule(eth, 7).reason == "more peaks than H");

  const Molecule tol = toluene();  // 8 H; 6 H-bearing carbons; 4 H classes (CH3, ortho, meta, para)
  CHECK(rule(tol, 8).rule == PeakRule::PerH);
  m = rule(tol, 6);
  CHECK(m.rule == PeakRule::PerHeavyAtom);
  CHECK(m.atoms[0] == std::vector<int32_t>{7, 10, 11, 12, 13, 14});
  m = rule(tol, 4);
  CHECK(m.rule == PeakRule::PerHClass);
  CHECK(m.atoms[0] == std::vector<int32_t>{7, 10, 11, 12});
  for (int32_t a : m.atoms[0]) CHECK(tol.atoms[a].element == 1);

  // HO-CH2-Cl with 2 peaks: the two C-H (per-H list) or CH2 + OH (per-group list): skipped
  m = rule(chloromethanol(), 2);
  CHECK(m.rule == PeakRule::Skipped);
  CHECK(m.reason == "ambiguous: per-H or per-group list");

  // in a dataset: 1H peak sets superseded by assigned 1H, and only the first usable set per nucleus
  Dataset ds;
  DatasetEntry e = entry(ethanol());
  e.assigned = {{0, Nucleus::C13, 18.0f, 1}};
  e.peak_sets = {peaks(Nucleus::C13, {18.0f, 58.0f}), peaks(Nucleus::H1, {1.0f, 2.0f, 3.0f, 4.0f}),
                 peaks(Nucleus::H1, {1.2f, 1.2f, 1.2f, 3.6f, 3.6f, 2.5f}), peaks(Nucleus::H1, {1.2f, 3.6f, 2.5f})};
  ds.entries.push_back(e);
  ShiftDataset sd(ds, Split::Train, ShiftStandardizer{});
  REQUIRE(sd.size() == 1);
  CHECK(sd.sample(0).labelled);
  const auto& c = sd.stats().counts;
  CHECK(c.at("13C peak set: skipped, superseded by assigned shifts") == 1);
  CHECK(c.at("1H peak set: skipped, peak count matches no counting rule") == 1);
  CHECK(c.at("1H peak set: used, per H") == 1);
  CHECK(c.at("1H peak set: skipped, another set of the nucleus already used") == 1);
  const ShiftBatch b = sd.make_batch({0});
  const auto segs = segments_of(b.unassigned[0]);
  REQUIRE(segs.size() == 1);
  CHECK(segs[0].index == std::vector<int64_t>{4, 5, 6, 7, 8, 9});
  check_close(segs[0].target, {1.2f, 1.2f, 1.2f, 2.5f, 3.6f, 3.6f});
  ShiftDataOptions o;
  o.all_peak_sets = true;
  CHECK(segments_of(ShiftDataset(ds, Split::Train, ShiftStandardizer{}, o).make_batch({0}).unassigned[0]).size() == 2);
  o = {};
  o.use_assigned = false;
  ShiftDataset un(ds, Split::Train, ShiftStandardizer{}, o);
  REQUIRE(un.size() == 1);
  CHECK_FALSE(un.sample(0).labelled);
  CHECK(un.stats().counts.at("13C peak set: used, per atom") == 1);
  o = {};
  o.nuclei = {false, true, false, false};  // 13C only
  ShiftDataset c13(ds, Split::Train, ShiftStandardizer{}, o);
  CHECK(c13.make_batch({0}).unassigned[0].size() == 0);
  CHECK(c13.make_batch({0}).assigned[1].size() == 1);
}

TEST_CASE("shift data: entries without coordinates or targets, other splits") {
  Dataset ds;
  DatasetEntry e = entry(ethanol());
  e.mol.coords.clear();
  e.assigned = {{0, Nucleus::C13, 18.0f, 1}};
  ds.entries.push_back(e);
  ds.entries.push_back(entry(ethanol()));
  DatasetEntry v = entry(ethanol(), Split::Valid);
  v.assigned = {{0, Nucleus::C13, 18.0f, 1}};
  ds.entries.push_back(v);
  ShiftDataset sd(ds, Split::Train, ShiftStandardizer{});
  CHECK(sd.size() == 0);
  CHECK(sd.stats().entries == 2);
  CHECK(sd.stats().counts.at("entry skipped: no 3-D coordinates") == 1);
  CHECK(sd.stats().counts.at("entry skipped: no usable targets") == 1);
  ShiftDataset valid(ds, Split::Valid, ShiftStandardizer{});
  REQUIRE(valid.size() == 1);
  CHECK(valid.sample(0).entry == 2);
  CHECK(valid.make_batch({0}).entries == std::vector<int64_t>{2});
  ShiftStandardizer zero;
  zero.std[1] = 0;
  CHECK_THROWS_AS(ShiftDataset(ds, Split::Train, zero), Error);
}

TEST_CASE("shift data: standardiser fit on the split and round trip") {
  Dataset ds;
  DatasetEntry a = entry(ethanol());
  a.assigned = {{0, Nucleus::C13, 10.0f, 1}, {1, Nucleus::C13, 20.0f, 1}, {0, Nucleus::H1, 1.0f, 1},
                {1, Nucleus::H1, 3.0f, 1}};
  DatasetEntry b = entry(ethanol());
  b.assigned = {{0, Nucleus::C13, 30.0f, 1}};
  b.peak_sets = {peaks(Nucleus::F19, {-100.0f, -120.0f})};  // no assigned 19F: the peaks are used
  DatasetEntry test = entry(ethanol(), Split::Test);
  test.assigned = {{0, Nucleus::C13, 1000.0f, 1}};
  ds.entries = {a, b, test};
  const ShiftStandardizer st = fit_standardizer(ds, Split::Train);
  CHECK(st.mean[1] == doctest::Approx(20.0));
  CHECK(st.std[1] == doctest::Approx(std::sqrt(200.0 / 3.0)));
  CHECK(st.mean[0] == doctest::Approx(2.0));
  CHECK(st.std[0] == doctest::Approx(1.0));
  CHECK(st.mean[2] == doctest::Approx(-110.0));
  CHECK(st.std[2] == doctest::Approx(10.0));
  CHECK(st.mean[3] == 0.0);  // nothing: identity
  CHECK(st.std[3] == 1.0);
  for (int n = 0; n < kNumNuclei; ++n)
    for (double v : {-200.0, 0.0, 7.25, 180.0}) CHECK(st.to_ppm(n, st.to_z(n, v)) == doctest::Approx(v));
  CHECK(st.to_z(1, 20.0) == doctest::Approx(0.0));
  CHECK(fit_standardizer(ds, Split::Test).std[1] == 1.0);  // one value: std 1, not 0
}

namespace {

// labelled chains (one assigned 13C) and unlabelled chains (a complete 13C peak list), sizes 4..max_atoms.
Dataset chain_dataset(int n_labelled, int n_unlabelled, int max_atoms) {
  Dataset ds;
  uint64_t x = 12345;
  auto next = [&] {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((x >> 33) % static_cast<uint64_t>(max_atoms - 3)) + 4;
  };
  for (int i = 0; i < n_labelled + n_unlabelled; ++i) {
    const int n = next();
    DatasetEntry e = entry(chain(n, i));
    if (i < n_labelled) {
      e.assigned = {{0, Nucleus::C13, 10.0f + static_cast<float>(i % 50), 1}};
    } else {
      std::vector<float> s;
      for (int k = 0; k < n; ++k) s.push_back(static_cast<float>(10 + k));
      e.peak_sets = {peaks(Nucleus::C13, s, std::vector<int8_t>(static_cast<size_t>(n), 0))};
    }
    ds.entries.push_back(std::move(e));
  }
  return ds;
}

}  // namespace

TEST_CASE("shift sampler: deterministic, B1 + B2 mixing, repeat mode, modes") {
  const Dataset ds = chain_dataset(40, 390, 30);
  ShiftDataset sd(ds, Split::Train, ShiftStandardizer{});
  REQUIRE(sd.size() == 430);
  REQUIRE(sd.stats().labelled == 40);
  ShiftSamplerOptions o;
  o.seed = 7;
  o.bucket_batches = 5;
  ShiftSampler sampler(sd, o);
  const auto e3 = sampler.epoch(3);
  CHECK(e3 == sampler.epoch(3));
  CHECK(e3 == ShiftSampler(sd, o).epoch(3));
  CHECK(e3 != sampler.epoch(4));
  ShiftSamplerOptions o2 = o;
  o2.seed = 8;
  CHECK(e3 != ShiftSampler(sd, o2).epoch(3));

  // 390 unlabelled / 16 -> 25 batches; the 40 labelled are cycled to fill 25 x 4
  REQUIRE(sampler.batches_per_epoch() == 25);
  REQUIRE(e3.size() == 25);
  std::map<int64_t, int> seen_u, seen_l;
  int short_batches = 0;
  for (const auto& batch : e3) {
    int nl = 0, nu = 0;
    bool labelled_first = true;
    for (size_t k = 0; k < batch.size(); ++k) {
      const bool lab = sd.sample(batch[k]).labelled;
      (lab ? nl : nu)++;
      (lab ? seen_l : seen_u)[batch[k]]++;
      if (lab && k >= 4) labelled_first = false;
    }
    CHECK(nl == 4);
    CHECK(labelled_first);
    if (nu != 16) {
      ++short_batches;
      CHECK(nu == 390 - 24 * 16);
    }
  }
  CHECK(short_batches == 1);
  CHECK(seen_u.size() == 390);  // every unlabelled sample exactly once
  for (const auto& kv : seen_u) CHECK(kv.second == 1);
  CHECK(seen_l.size() == 40);  // every labelled sample 2 or 3 times (100 slots)
  for (const auto& kv : seen_l) CHECK((kv.second == 2 || kv.second == 3));

  ShiftSamplerOptions lo = o;
  lo.mode = SamplerMode::LabelledOnly;
  const auto le = ShiftSampler(sd, lo).epoch(0);
  CHECK(le.size() == 10);
  std::set<int64_t> all;
  for (const auto& batch : le)
    for (int64_t i : batch) {
      CHECK(sd.sample(i).labelled);
      all.insert(i);
    }
  CHECK(all.size() == 40);
  lo.mode = SamplerMode::UnlabelledOnly;
  CHECK(ShiftSampler(sd, lo).epoch(0).size() == 25);
  lo.mode = SamplerMode::All;
  CHECK(ShiftSampler(sd, lo).batches_per_epoch() == (430 + 3) / 4);

  const auto seq = sequential_batches(sd, 64);
  CHECK(seq.size() == 7);
  int prev = 0;
  for (const auto& batch : seq)
    for (int64_t i : batch) {
      CHECK(sd.sample(i).num_atoms >= prev);
      prev = sd.sample(i).num_atoms;
    }
  ShiftSamplerOptions bad;
  bad.labelled_batch = 0;
  CHECK_THROWS_AS(ShiftSampler(sd, bad), Error);
}

TEST_CASE("shift sampler: bucketing by size reduces padding") {
  const Dataset ds = chain_dataset(500, 2000, 80);
  ShiftDataset sd(ds, Split::Train, ShiftStandardizer{});
  ShiftSamplerOptions o;
  o.seed = 1;
  o.bucket_batches = 0;
  const double random = padding_fraction(sd, ShiftSampler(sd, o).epoch(0));
  o.bucket_batches = 100;
  const double bucketed = padding_fraction(sd, ShiftSampler(sd, o).epoch(0));
  o.mode = SamplerMode::LabelledOnly;
  o.labelled_batch = 20;
  const double bucketed_l = padding_fraction(sd, ShiftSampler(sd, o).epoch(0));
  o.bucket_batches = 0;
  const double random_l = padding_fraction(sd, ShiftSampler(sd, o).epoch(0));
  MESSAGE("padding fraction, chains of 4..80 atoms: mixed 4+16 random " << random << ", bucketed " << bucketed
                                                                        << "; labelled-only 20 random " << random_l
                                                                        << ", bucketed " << bucketed_l);
  CHECK(random > 0.3);
  CHECK(bucketed < 0.25 * random);
  CHECK(bucketed_l < 0.25 * random_l);
}

TEST_CASE("shift data: real NMR8K dataset (targets on the right elements, usable counts)") {
  if (!std::filesystem::exists(data_file())) {
    MESSAGE("skipped: " << data_file() << " is absent (run `larmor prepare`)");
    return;
  }
  const Dataset ds = load_dataset(data_file());
  const ShiftStandardizer st = fit_standardizer(ds, Split::Train);
  MESSAGE("standardiser (train): 1H mean " << st.mean[0] << " std " << st.std[0] << "; 13C mean " << st.mean[1]
                                           << " std " << st.std[1]);
  CHECK(st.mean[0] > 2.0);
  CHECK(st.mean[0] < 5.0);
  CHECK(st.mean[1] > 60.0);
  CHECK(st.mean[1] < 110.0);
  for (Split split : {Split::Train, Split::Valid, Split::Test}) {
    const auto t0 = std::chrono::steady_clock::now();
    ShiftDataset sd(ds, split, st);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE(std::string(split_name(split)) << " (built in " << secs << " s):\n" << sd.stats().report());
    CHECK(sd.size() > 0);
    // every target: on an atom of the right element, per segment as many targets as atoms
    int64_t wrong = 0;
    for (const ShiftSample& s : sd.samples()) {
      const Molecule& mol = ds.entries[s.entry].mol;
      for (const ShiftSegment& seg : s.segments) {
        for (int32_t k = seg.begin; k < seg.end; ++k) {
          const int32_t a = s.atoms[k];
          if (a < 0 || a >= mol.num_atoms() || mol.atoms[a].element != nucleus_element(seg.nucleus) ||
              s.tokens[a + 1] != unimol_token(nucleus_element(seg.nucleus)))
            ++wrong;
        }
      }
    }
    CHECK(wrong == 0);
    if (split != Split::Train) continue;
    // batches from the sampler: the index tensors point at tokens of the right element
    ShiftSamplerOptions o;
    o.mode = SamplerMode::LabelledOnly;
    o.labelled_batch = 20;
    ShiftSampler sampler(sd, o);
    const auto epoch = sampler.epoch(0);
    for (int k = 0; k < 5; ++k) {
      const ShiftBatch b = sd.make_batch(epoch[k]);
      const auto tok = b.tokens.to_vector<int32_t>();
      const auto mask = b.key_mask.to_vector<int32_t>();
      for (int n = 0; n < 2; ++n) {
        if (b.assigned[n].size() == 0) continue;
        for (int64_t i : b.assigned[n].index.to_vector<int64_t>()) {
          CHECK(tok[i] == unimol_token(n == 0 ? 1 : 6));
          CHECK(mask[i] == 1);
        }
        const auto off = b.assigned[n].offsets.to_vector<int32_t>();
        CHECK(off.front() == 0);
        CHECK(off.back() == b.assigned[n].size());
      }
    }
    o.bucket_batches = 0;
    const double random = padding_fraction(sd, ShiftSampler(sd, o).epoch(0));
    const double bucketed = padding_fraction(sd, epoch);
    MESSAGE("NMR8K train, labelled-only batches of 20: padding fraction random " << random << ", bucketed "
                                                                                  << bucketed);
    CHECK(bucketed < 0.5 * random);
  }
}
