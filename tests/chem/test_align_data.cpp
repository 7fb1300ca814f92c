// The alignment data side (chem/align_data): on a hand-made dataset whose entries each exercise one rule
// (complete assigned 13C, unassigned peak set only, partial assignment with and without a peak set, no 13C
// at all, another split), the samples, atom-level pairs, molecule-level distinct peaks and their sources
// are counted and valued as the rules say; batches validate and hold the right offsets and spectrum bins;
// the sampler is a deterministic drop_last permutation.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "chem/align_data.h"
#include "engine/error.h"
#include "tests/chem/shift_fixtures.h"

using namespace larmor;
using namespace larmor::chem;

namespace {

void drop_nucleus(DatasetEntry& e, Nucleus n) {
  e.assigned.erase(std::remove_if(e.assigned.begin(), e.assigned.end(),
                                  [&](const AssignedShift& a) { return a.nucleus == n; }),
                   e.assigned.end());
}

// chain_entry's 13C shifts: 8 + 9 * (heavy neighbours) + 40 next to the O; CH3 ends 17, CH2 inside 26.
Dataset rules_dataset() {
  Dataset ds;
  // 0: butane, complete assigned 13C -> 4 pairs, distinct peaks (17, q), (26, t)
  ds.entries.push_back(test::chain_entry(4, false, Split::Train));
  // 1: propanol, no assigned 13C, a 1H peak set then two 13C peak sets (the first is used), per atom with a
  //    repeated peak -> 3 distinct peaks, no pairs
  {
    DatasetEntry e = test::chain_entry(3, true, Split::Train);
    drop_nucleus(e, Nucleus::C13);
    PeakSet h;
    h.nucleus = Nucleus::H1;
    h.shifts = {1.0f, 3.5f};
    h.mult = {kMultUnknown, kMultUnknown};
    e.peak_sets.push_back(h);
    PeakSet c;
    c.nucleus = Nucleus::C13;
    c.shifts = {64.0f, 26.0f, 17.0f, 26.0f};
    c.mult = {2, 2, 3, 2};
    e.peak_sets.push_back(c);
    PeakSet c2 = c;
    c2.shifts = {1.0f, 2.0f, 3.0f, 4.0f};
    e.peak_sets.push_back(c2);
    ds.entries.push_back(e);
  }
  // 2: pentane with only 1H assigned and no peak set -> skipped (no 13C spectrum)
  {
    DatasetEntry e = test::chain_entry(5, false, Split::Train);
    drop_nucleus(e, Nucleus::C13);
    ds.entries.push_back(e);
  }
  // 3: butanol with carbon 1 unassigned and no peak set -> 3 pairs, partial spectrum of their distinct peaks
  {
    DatasetEntry e = test::chain_entry(4, true, Split::Train);
    e.assigned.erase(std::remove_if(e.assigned.begin(), e.assigned.end(),
                                    [](const AssignedShift& a) { return a.nucleus == Nucleus::C13 && a.atom == 1; }),
                     e.assigned.end());
    ds.entries.push_back(e);
  }
  // 4: ethane with carbon 0 unassigned and a 13C peak set without multiplicities -> 1 pair, spectrum from
  //    the peak set (class 4 "unknown")
  {
    DatasetEntry e = test::chain_entry(2, false, Split::Train);
    e.assigned.erase(std::remove_if(e.assigned.begin(), e.assigned.end(),
                                    [](const AssignedShift& a) { return a.nucleus == Nucleus::C13 && a.atom == 0; }),
                     e.assigned.end());
    PeakSet c;
    c.nucleus = Nucleus::C13;
    c.shifts = {17.0f, 17.0f};
    c.mult = {kMultUnknown, kMultUnknown};
    e.peak_sets.push_back(c);
    ds.entries.push_back(e);
  }
  // 5: another split
  ds.entries.push_back(test::chain_entry(3, false, Split::Valid));
  return ds;
}

}  // namespace

TEST_CASE("align data: samples, pairs and molecule-level peaks follow the rules") {
  const Dataset ds = rules_dataset();
  const AlignDataset data(ds, Split::Train);
  const AlignDataStats& st = data.stats();
  CHECK(st.entries == 5);
  REQUIRE(data.size() == 4);
  CHECK(st.samples == 4);
  CHECK(st.with_pairs == 3);
  CHECK(st.pairs == 4 + 3 + 1);
  CHECK(st.counts.at("skipped: no 13C spectrum") == 1);
  CHECK(st.counts.at("spectrum from assigned") == 1);
  CHECK(st.counts.at("spectrum from peak set") == 2);
  CHECK(st.counts.at("spectrum from partial assigned") == 1);

  // butane: every carbon, in node order, with its ppm and H count; two distinct peaks
  const AlignSample& a = data.sample(0);
  CHECK(a.entry == 0);
  CHECK(a.spectrum_source == AlignSpectrumSource::Assigned);
  CHECK(a.num_carbons == 4);
  CHECK(a.input.carbon_nodes == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(a.carbon_atoms == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(a.input.carbon_ppm == std::vector<float>{17, 26, 26, 17});
  CHECK(a.input.carbon_multiplicity == std::vector<int32_t>{3, 2, 2, 3});
  CHECK(a.input.peak_ppm == std::vector<float>{17, 26});
  CHECK(a.input.peak_multiplicity == std::vector<int32_t>{3, 2});
  // heavy-atom graph: 4 carbons (type 5), 3 bonds -> 6 directed edges
  CHECK(a.input.node_features.size() == 4 * 3);
  for (int v = 0; v < 4; ++v) CHECK(a.input.node_features[v * 3] == 5);
  CHECK(a.input.edge_index.size() == 2 * 6);
  CHECK(a.input.node_hydrogens == std::vector<int32_t>{3, 2, 2, 3});  // attached H of the heavy-atom nodes

  // propanol: the first 13C set, distinct peaks ascending, no pairs; the O is a node of type 7
  const AlignSample& b = data.sample(1);
  CHECK(b.spectrum_source == AlignSpectrumSource::PeakSet);
  CHECK_FALSE(b.has_pairs());
  CHECK(b.input.peak_ppm == std::vector<float>{17, 26, 64});
  CHECK(b.input.peak_multiplicity == std::vector<int32_t>{3, 2, 2});
  CHECK(b.input.node_features.size() == 4 * 3);
  CHECK(b.input.node_features[3 * 3] == 7);
  CHECK(b.input.node_hydrogens == std::vector<int32_t>{3, 2, 2, 1});  // the O carries its H

  // butanol with carbon 1 unassigned: pairs of carbons 0, 2, 3 (3 is next to the O: 26 + 40)
  const AlignSample& c = data.sample(2);
  CHECK(c.spectrum_source == AlignSpectrumSource::PartialAssigned);
  CHECK(c.input.carbon_nodes == std::vector<int32_t>{0, 2, 3});
  CHECK(c.input.carbon_ppm == std::vector<float>{17, 26, 66});
  CHECK(c.input.carbon_multiplicity == std::vector<int32_t>{3, 2, 2});
  CHECK(c.input.peak_ppm == std::vector<float>{17, 26, 66});

  // ethane: one pair (carbon 1), the peak set's one distinct peak with class "unknown"
  const AlignSample& d = data.sample(3);
  CHECK(d.spectrum_source == AlignSpectrumSource::PeakSet);
  CHECK(d.input.carbon_nodes == std::vector<int32_t>{1});
  CHECK(d.input.peak_ppm == std::vector<float>{17});
  CHECK(d.input.peak_multiplicity == std::vector<int32_t>{kAlignMultiplicityUnknown});

  // options: without peak sets the two peak-set-only/partial molecules change
  AlignDataOptions no_sets;
  no_sets.use_peak_sets = false;
  const AlignDataset assigned_only(ds, Split::Train, no_sets);
  CHECK(assigned_only.size() == 3);  // propanol has no spectrum left
  CHECK(assigned_only.sample(2).spectrum_source == AlignSpectrumSource::PartialAssigned);

  CHECK(AlignDataset(ds, Split::Valid).size() == 1);
  CHECK(AlignDataset(ds, Split::Test).size() == 0);
}

TEST_CASE("align data: a batch validates with offsets, pairs and spectrum bins in molecule order") {
  const Dataset ds = rules_dataset();
  const AlignDataset data(ds, Split::Train);
  const AlignBatch b = data.make_batch({0, 1, 2, 3});
  CHECK_NOTHROW(b.validate());
  CHECK(b.batch_size() == 4);
  CHECK(b.num_nodes() == 4 + 4 + 5 + 2);
  CHECK(b.node_offsets.to_vector<int32_t>() == std::vector<int32_t>{0, 4, 8, 13, 15});
  CHECK(b.num_carbons() == 8);
  CHECK(b.carbon_offsets.to_vector<int32_t>() == std::vector<int32_t>{0, 4, 4, 7, 8});
  CHECK(b.carbon_nodes.to_vector<int32_t>() == std::vector<int32_t>{0, 1, 2, 3, 8, 10, 11, 14});
  CHECK(b.carbon_ppm.to_vector<float>() == std::vector<float>{17, 26, 26, 17, 17, 26, 66, 17});
  CHECK(b.entries == std::vector<int64_t>{0, 1, 3, 4});
  CHECK(b.max_peaks() == 3);
  const std::vector<int32_t> mask = b.peak_mask.to_vector<int32_t>();
  CHECK(mask == std::vector<int32_t>{1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  // spectrum row 1 (propanol): bins of 17, 26 and 64 ppm, nothing else
  const std::vector<float> spec = b.spectrum.to_vector<float>();
  std::set<int64_t> on;
  for (int64_t k = 0; k < kAlignSpectrumBins; ++k)
    if (spec[kAlignSpectrumBins + k] != 0) on.insert(k);
  CHECK(on == std::set<int64_t>{670, 760, 1140});
  CHECK_THROWS_AS(data.make_batch({}), Error);
  CHECK_THROWS_AS(data.make_batch({4}), Error);
}

TEST_CASE("align data: the sampler is a deterministic drop_last permutation per (seed, epoch)") {
  const auto e0 = align_epoch_batches(10, 3, 5, 0);
  REQUIRE(e0.size() == 3);
  std::set<int64_t> seen;
  for (const auto& b : e0) {
    CHECK(b.size() == 3);
    seen.insert(b.begin(), b.end());
  }
  CHECK(seen.size() == 9);  // 9 distinct samples, one left out
  CHECK(align_epoch_batches(10, 3, 5, 0) == e0);
  CHECK(align_epoch_batches(10, 3, 5, 1) != e0);
  CHECK(align_epoch_batches(10, 3, 6, 0) != e0);
  CHECK(align_epoch_batches(2, 3, 5, 0).empty());
  CHECK_THROWS_AS(align_epoch_batches(10, 0, 5, 0), Error);
  // a permutation of everything
  std::vector<int64_t> p = align_permutation(50, 1, 2);
  std::sort(p.begin(), p.end());
  for (int64_t i = 0; i < 50; ++i) CHECK(p[i] == i);
  // evaluation groups: one group of all when fewer than the size, else full groups only
  const auto g = align_eval_groups(5, 128, 1);
  REQUIRE(g.size() == 1);
  CHECK(g[0].size() == 5);
  const auto g2 = align_eval_groups(300, 128, 1);
  REQUIRE(g2.size() == 2);
  CHECK(g2[0].size() == 128);
  CHECK(g2[1].size() == 128);
  CHECK(align_eval_groups(0, 128, 1).empty());
}
