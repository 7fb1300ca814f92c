// Retrieval end to end with Open Babel (chem/ob_align_index + chem/align_index): a tiny alignment model is
// trained briefly on well-separated molecules read from SMILES (chains of 2..7 carbons with and without a
// terminal O, each with its own synthetic, complete 13C spectrum), an index is built from a SMILES file of
// the same molecules (plus bad records, which are reported with their record numbers and skipped, and a
// carbon-free molecule, which is counted), and each molecule's own peak list retrieves it first. The index
// file round trip and the formula/mass filters are checked on the real library too.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>

#include "chem/align_training.h"
#include "chem/ob_assign.h"
#include "chem/ob_align_index.h"
#include "chem/ob_molecule.h"
#include "chem/ob_predict.h"
#include "engine/error.h"
#include "tests/chem/peak_fixtures.h"
#include "tests/chem/shift_fixtures.h"
#include "tests/test_util.h"

using namespace larmor;
using namespace larmor::chem;

namespace {
using test::peaks_of;

const test::TempDir temp_root("retrieve");

std::string chain_smiles(int n, bool oxygen) { return std::string(static_cast<size_t>(n), 'C') + (oxygen ? "O" : ""); }

// 13C shift of carbon i of the chain: 8 + 9 x (heavy neighbours) + 40 next to the O, moved by 7 ppm per
// carbon of the chain so that no two molecules share a peak list (as the alignment training fixture).
std::vector<std::pair<double, int>> chain_peaks(const Molecule& mol) {
  const int heavy = mol.num_input_atoms;
  int n = 0;
  for (int i = 0; i < heavy; ++i) n += mol.atoms[static_cast<size_t>(i)].element == 6;
  std::vector<int> nb(static_cast<size_t>(heavy), 0);
  std::vector<bool> next_to_o(static_cast<size_t>(heavy), false);
  for (const Bond& b : mol.bonds) {
    if (b.a >= heavy || b.b >= heavy) continue;
    ++nb[static_cast<size_t>(b.a)];
    ++nb[static_cast<size_t>(b.b)];
    if (mol.atoms[static_cast<size_t>(b.a)].element == 8) next_to_o[static_cast<size_t>(b.b)] = true;
    if (mol.atoms[static_cast<size_t>(b.b)].element == 8) next_to_o[static_cast<size_t>(b.a)] = true;
  }
  std::vector<std::pair<double, int>> out;
  for (int i = 0; i < heavy; ++i) {
    const Atom& a = mol.atoms[static_cast<size_t>(i)];
    if (a.element != 6) continue;
    out.emplace_back(8.0 + 9.0 * nb[static_cast<size_t>(i)] + (next_to_o[static_cast<size_t>(i)] ? 40.0 : 0.0) + 7.0 * n,
                     a.num_h);
  }
  return out;
}

struct Fixture {
  Dataset ds;
  std::vector<std::string> smiles;
  std::vector<std::vector<std::pair<double, int>>> peaks;
};

Fixture make_fixture() {
  Fixture f;
  for (int n = 2; n <= 7; ++n)
    for (bool o : {false, true}) {
      const std::string smi = chain_smiles(n, o);
      DatasetEntry e;
      e.mol = molecule_from_smiles(smi, "fixture:" + smi);
      e.split = Split::Train;
      e.sources = source_bit(Source::NMR8K);
      const auto pk = chain_peaks(e.mol);
      int k = 0;
      for (int i = 0; i < e.mol.num_input_atoms; ++i)
        if (e.mol.atoms[static_cast<size_t>(i)].element == 6)
          e.assigned.push_back({i, Nucleus::C13, static_cast<float>(pk[static_cast<size_t>(k++)].first), 1});
      f.ds.entries.push_back(e);
      f.smiles.push_back(smi);
      f.peaks.push_back(pk);
    }
  return f;
}

}  // namespace

TEST_CASE("retrieve: after a short training each fixture spectrum retrieves its own molecule from a SMILES library") {
  const Fixture fx = make_fixture();
  // the alignment training fixture's recipe: full-batch steps, LR decayed to 0, no dropout
  AlignTrainOptions o;
  o.out_dir = temp_root.fresh("train");
  AlignModelConfig c = AlignModelConfig::tiny();
  c.spectrum_encoder = "peakset";
  c.peak_ppm_scale = 0.02;
  c.gin_dropout = 0.0;
  c.projection_dropout = 0.0;
  c.alpha = 0.5;
  o.model_config = c;
  o.batch = 12;
  o.epochs = 600;
  o.schedule = "warmup-linear";
  o.lr = 1e-2;
  o.seed = 3;
  o.checkpoint_every = 0;
  const AlignTrainResult tr = train_align(fx.ds, o);
  LoadedAlignModel m = load_align_model(tr.last_path);

  // the library: the 12 molecules in another order, two bad records and a molecule without carbon
  const std::string lib = temp_root.file("lib.smi");
  {
    std::ofstream out(lib);
    out << "# fixture library\n";
    for (size_t i = fx.smiles.size(); i-- > 0;) {
      out << fx.smiles[i] << " chain_" << fx.smiles[i] << "\n";
      if (i == 6) out << "C1CC unclosed\nO water\n";
    }
    out << "C(C bad_parenthesis\n";
  }
  std::vector<std::string> problems;
  AlignLibraryStats st;
  AlignIndex ix = build_align_index_from_library(
      *m.model, lib, [&](const std::string& p) { problems.push_back(p); }, &st, 5);
  CHECK(st.records == 15);
  CHECK(st.indexed == 12);
  CHECK(st.bad == 2);
  CHECK(st.no_carbon == 1);
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].find("lib.smi") != std::string::npos);
  CHECK(problems[0].find(":8") != std::string::npos);  // line 8: "C1CC unclosed"
  REQUIRE(ix.size() == 12);
  CHECK(ix.source == lib);
  CHECK(ix.model_fingerprint == align_model_fingerprint(*m.model));

  // through the file, f16 storage
  ix.model_path = tr.last_path;
  const std::string path = temp_root.file("lib.index");
  save_align_index(path, ix, StoredFloat::F16);
  const AlignIndex loaded = load_align_index(path);
  CHECK_NOTHROW(check_align_index_model(loaded, path, *m.model, align_model_fingerprint(*m.model), tr.last_path));

  for (const AlignIndex* index : {static_cast<const AlignIndex*>(&ix), &loaded})
    for (size_t i = 0; i < fx.smiles.size(); ++i) {
      CAPTURE(fx.smiles[i]);
      const std::vector<float> q = embed_peak_list(*m.model, peaks_of(fx.peaks[i]), fx.smiles[i]);
      const RetrievalResult r = search_align_index(*index, q, m.model->config().logit_scale, 3);
      REQUIRE(r.hits.size() == 3);
      const AlignIndexMolecule& top = index->molecules[static_cast<size_t>(r.hits[0].molecule)];
      CHECK(top.name == "chain_" + fx.smiles[i]);
      CHECK(top.smiles == fx.ds.entries[i].mol.smiles);
      CHECK(r.hits[0].probability > r.hits[1].probability);
      // the formula filter leaves exactly that molecule; its mass window too
      RetrievalFilter f;
      f.formula = fx.ds.entries[i].mol.formula;
      const RetrievalResult rf = search_align_index(*index, q, m.model->config().logit_scale, 3, f);
      CHECK(rf.candidates == 1);
      REQUIRE(rf.hits.size() == 1);
      CHECK(rf.hits[0].probability == doctest::Approx(1.0));
      RetrievalFilter fm;
      fm.mass = top.mass;
      fm.mass_tolerance = 0.01;
      CHECK(search_align_index(*index, q, m.model->config().logit_scale, 3, fm).candidates == 1);
    }

  // a differently initialised model is refused by the index
  AlignModel other(c, 99);
  CHECK_THROWS_WITH_AS(check_align_index_model(loaded, path, other, align_model_fingerprint(other), "other"),
                       doctest::Contains("different model"), Error);
  // the output formats name the hit
  const RetrievalResult r0 = search_align_index(loaded, embed_peak_list(*m.model, peaks_of(fx.peaks[0])),
                                                m.model->config().logit_scale, 2);
  CHECK(format_retrieval_table(r0, loaded, "q").find("chain_CC") != std::string::npos);
  CHECK(format_retrieval_csv(r0, loaded).rfind("rank,score,probability,id,name,smiles,formula,mass\n1,", 0) == 0);
  CHECK(format_retrieval_json(r0, loaded, "q").find("\"candidates\": 12") != std::string::npos);
  CHECK_THROWS_AS(build_align_index_from_library(*m.model, temp_root.file("missing.smi")), Error);

  // `assign --method align`: each molecule's own peaks, in reverse order, go back to their carbons (a carbon
  // is right when its fixture shift equals the peak: symmetric chain ends share one), every peak on a carbon
  // with its multiplicity, distinct carbons for a per-carbon list, confidences in [0, 1].
  int right = 0, total = 0;
  for (size_t i = 0; i < fx.smiles.size(); ++i) {
    CAPTURE(fx.smiles[i]);
    const Molecule& mol = fx.ds.entries[i].mol;
    std::vector<std::pair<double, int>> pk(fx.peaks[i].rbegin(), fx.peaks[i].rend());
    const std::vector<Peak> peaks = peaks_of(pk);
    const AssignReport r = assign_by_alignment(*m.model, mol, peaks, chem::AssignOptions{}, "fixture", tr.last_path);
    CHECK(r.method == "align");
    REQUIRE(r.result.assignments.size() == 1);
    std::vector<double> shift_of_atom(static_cast<size_t>(mol.num_atoms()), NAN);
    for (const auto& a : fx.ds.entries[i].assigned) shift_of_atom[static_cast<size_t>(a.atom)] = a.shift;
    std::set<int32_t> used;
    for (const PeakMatch& pm : r.result.assignments[0].matches) {
      CHECK(pm.confidence >= 0.0);
      CHECK(pm.confidence <= 1.0);
      CHECK(mol.atoms[static_cast<size_t>(pm.atom)].num_h == pk[static_cast<size_t>(pm.peak)].second);  // multiplicity kept
      CHECK(used.insert(pm.atom).second);  // per-carbon list: distinct atoms
      right += std::fabs(shift_of_atom[static_cast<size_t>(pm.atom)] - pk[static_cast<size_t>(pm.peak)].first) < 1e-3;
      ++total;
    }
  }
  // The tiny 8-wide model trained for retrieval (alpha 0.5) gets 46 of 54 (chance with the multiplicity
  // constraint: about 1 in 3 for the CH2 runs); the bar is 80%.
  CHECK(right >= total * 4 / 5);
  // bad peak lists: more peaks than carbons, empty
  std::vector<std::pair<double, int>> too_many = fx.peaks[0];
  too_many.push_back({50.0, 2});
  CHECK_THROWS_WITH_AS(assign_by_alignment(*m.model, fx.ds.entries[0].mol, peaks_of(too_many), chem::AssignOptions{}, "many.txt"),
                       doctest::Contains("many.txt"), Error);
  CHECK_THROWS_AS(assign_by_alignment(*m.model, fx.ds.entries[0].mol, {}, chem::AssignOptions{}, "empty.txt"), Error);
}

// `larmor retrieve --rerank-model`: chem::rerank_retrieval with the shift model as the CLI drives it (SMILES ->
// Open Babel molecule -> ShiftPredictor -> predicted_carbon_classes). The query is the tiny shift model's own
// 13C prediction for one library molecule (one peak per carbon class, with its H count), so that molecule
// explains it with fit error 0 and no unmatched class, and every other molecule of the library fits worse;
// the alignment model is untrained, so its order is arbitrary and only the re-ranking can put it first.
TEST_CASE("retrieve: re-ranking with the shift model puts the molecule whose predicted spectrum is the query first") {
  ShiftPredictor predictor(test::tiny_trained_model());
  NucleusSet c13{};
  c13[static_cast<size_t>(Nucleus::C13)] = true;
  const auto classes_of = [&](const AlignIndexMolecule& m) {
    const ShiftPrediction p = predictor.predict(molecule_from_smiles(m.smiles, m.id), Solvent::Unknown, c13);
    std::vector<double> atom_ppm(static_cast<size_t>(p.molecule.num_atoms()), NAN);  // (atoms)
    for (const AtomShift& a : p.atoms) atom_ppm[static_cast<size_t>(a.atom)] = a.raw_ppm;
    return predicted_carbon_classes(p.molecule, atom_ppm);
  };

  const std::string lib = temp_root.file("rerank_lib.smi");
  {
    std::ofstream out(lib);
    out << "CCO ethanol\nCCCCO butanol\nCC(C)O isopropanol\nCCOC methoxyethane\nCCCC butane\nCCCO propanol\n";
  }
  AlignModel align(AlignModelConfig::tiny(), 5);
  const AlignIndex ix = build_align_index_from_library(align, lib);
  REQUIRE(ix.size() == 6);
  const int64_t target = 5;  // propanol
  REQUIRE(ix.molecules[target].name == "propanol");

  std::vector<Peak> peaks;  // the model's propanol spectrum, one peak per class, plus a repeat (used once)
  for (const CarbonClass& c : classes_of(ix.molecules[target])) {
    Peak p;
    p.shift = c.predicted_ppm;
    p.mult = static_cast<int8_t>(c.num_h);
    peaks.push_back(p);
  }
  REQUIRE(peaks.size() == 3);
  peaks.push_back(peaks[1]);
  const std::vector<float> q = embed_peak_list(align, peaks, "propanol.txt");
  const double scale = align.config().logit_scale;
  const RetrievalResult aligned = search_align_index(ix, q, scale, 6);
  REQUIRE(aligned.hits.size() == 6);
  CHECK(aligned.reranked == 0);
  CHECK_FALSE(aligned.hits[0].reranked);
  CHECK(aligned.hits[0].molecule != target);  // this untrained model (seed 5) does not rank it first

  const double u = AlignEvalOptions{}.unmatched_penalty, w = AlignEvalOptions{}.combine_weight;
  const std::vector<Peak> distinct(peaks.begin(), peaks.begin() + 3);
  for (double weight : {0.0, w}) {
    CAPTURE(weight);
    RetrievalResult r = aligned;
    std::vector<std::string> warnings;
    rerank_retrieval(r, ix, peaks, classes_of, 6, 6, u, weight, [&](const std::string& m) { warnings.push_back(m); });
    CHECK(warnings.empty());
    CHECK(r.reranked == 6);
    REQUIRE(r.hits.size() == 6);
    CHECK(r.hits[0].molecule == target);
    CHECK(r.hits[0].fit_error_ppm == doctest::Approx(0.0).epsilon(1e-9));
    CHECK(r.hits[0].unmatched_classes == 0);
    std::set<int64_t> seen;
    for (size_t k = 0; k < r.hits.size(); ++k) {
      const RetrievalHit& h = r.hits[k];
      CAPTURE(ix.molecules[static_cast<size_t>(h.molecule)].smiles);
      CHECK(h.rank == static_cast<int64_t>(k) + 1);
      CHECK(h.reranked);
      seen.insert(h.molecule);
      // the same hit as the alignment gave it, with combined = fit score + weight * alignment score
      const auto same = std::find_if(aligned.hits.begin(), aligned.hits.end(),
                                     [&](const RetrievalHit& a) { return a.molecule == h.molecule; });
      REQUIRE(same != aligned.hits.end());
      CHECK(h.score == same->score);
      CHECK(h.probability == same->probability);
      const double fit = fit_predicted_spectrum(distinct, classes_of(ix.molecules[static_cast<size_t>(h.molecule)])).score(u);
      if (std::isinf(fit)) {
        CHECK(std::isinf(h.combined_score));
        CHECK(h.unmatched_classes == -1);
      } else {
        CHECK(h.combined_score == doctest::Approx(fit + weight * h.score));
      }
      if (k > 0) {
        CHECK(h.combined_score <= r.hits[k - 1].combined_score);
        if (weight == 0.0) CHECK(h.combined_score < r.hits[0].combined_score);  // no other molecule fits as well
      }
    }
    CHECK(seen.size() == 6);
  }

  // only the first 2 alignment hits are re-ranked; the rest follow in their alignment order
  RetrievalResult part = aligned;
  rerank_retrieval(part, ix, peaks, classes_of, 2, 5, u, w);
  CHECK(part.reranked == 2);
  REQUIRE(part.hits.size() == 5);
  CHECK(std::set<int64_t>{part.hits[0].molecule, part.hits[1].molecule} ==
        std::set<int64_t>{aligned.hits[0].molecule, aligned.hits[1].molecule});
  CHECK(part.hits[0].combined_score >= part.hits[1].combined_score);
  for (size_t k = 2; k < 5; ++k) {
    CHECK(part.hits[k].molecule == aligned.hits[k].molecule);
    CHECK(part.hits[k].rank == static_cast<int64_t>(k) + 1);
    CHECK_FALSE(part.hits[k].reranked);
    CHECK(std::isnan(part.hits[k].combined_score));
  }

  // a candidate whose SMILES cannot be read is ranked last with a warning, never an exception
  AlignIndex broken = ix;
  broken.molecules[target].smiles = "C1CC";
  RetrievalResult rb = aligned;
  std::vector<std::string> warnings;
  CHECK_NOTHROW(rerank_retrieval(rb, broken, peaks, classes_of, 6, 6, u, w,
                                 [&](const std::string& m) { warnings.push_back(m); }));
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("C1CC") != std::string::npos);
  CHECK(rb.hits.back().molecule == target);
  CHECK(rb.hits.back().combined_score == -std::numeric_limits<double>::infinity());

  // the outputs carry the re-ranking numbers only when there are some
  RetrievalResult r = aligned;
  rerank_retrieval(r, ix, peaks, classes_of, 6, 3, u, w);
  CHECK(r.hits.size() == 3);
  const std::string table = format_retrieval_table(r, ix, "q"), csv = format_retrieval_csv(r, ix),
                    js = format_retrieval_json(r, ix, "q");
  CHECK(table.find("combined") != std::string::npos);
  CHECK(table.find("propanol") != std::string::npos);
  CHECK(csv.rfind("rank,score,probability,id,name,smiles,formula,mass,combined_score,fit_error_ppm,unmatched_classes\n1,",
                  0) == 0);
  CHECK(csv.find(",0.0000,0\n") != std::string::npos);  // the target: fit error 0, no unmatched class
  CHECK(js.find("\"reranked\": 6") != std::string::npos);
  CHECK(js.find("\"unmatched_classes\": 0") != std::string::npos);
  CHECK(format_retrieval_table(aligned, ix, "q").find("combined") == std::string::npos);
  CHECK(format_retrieval_csv(aligned, ix).find("combined") == std::string::npos);
  CHECK(format_retrieval_json(aligned, ix, "q").find("reranked") == std::string::npos);
  CHECK_THROWS_AS(rerank_retrieval(r, ix, peaks, classes_of, 0, 3, u, w), Error);
}
