// The retrieval index and search (chem/align_index): an index file round-trips (f32 bit for bit, f16 within
// half-precision rounding, every string and mass); the search returns exactly the top-k of a brute-force
// ranking (double-precision dot products, filters applied by hand, ties by index) on random embeddings whose
// values are small dyadic fractions, so float and double products agree exactly and ties really occur; the
// model fingerprint tells models apart and survives a checkpoint round trip, and a mismatch is refused; bad
// peak lists and bad filters are clear errors; an index built from a dataset holds each molecule's own
// eval-mode embedding and its monoisotopic mass. A 50,000-molecule timing case is skipped unless asked for
// (--no-skip): it prints the time and checks the result, never asserts a duration.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "chem/align_index.h"
#include "chem/align_training.h"
#include "chem/peak_list.h"
#include "engine/error.h"
#include "layers/checkpoint.h"
#include "tests/chem/peak_fixtures.h"
#include "tests/chem/shift_fixtures.h"
#include "tests/test_util.h"

using namespace larmor;
using namespace larmor::chem;

namespace {
using test::peaks_of;

const test::TempDir temp_root("align_index");

uint64_t splitmix(uint64_t& s) {
  s += 0x9e3779b97f4a7c15ull;
  uint64_t z = s;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A deterministic index of M molecules with D-wide embeddings k/4, k in -4..4, names that need quoting,
// formulas from a small set (in varying element order) and masses on a 0.25 grid (one unknown).
AlignIndex random_index(int64_t M, int64_t D, uint64_t seed) {
  AlignIndex ix;
  ix.dim = D;
  uint64_t s = seed;
  auto next = [&]() { return splitmix(s); };
  const char* formulas[] = {"C6H6O", "C7H8", "C6H6O", "C9H10O2", "C2H6O", ""};
  for (int64_t i = 0; i < M * D; ++i) ix.embeddings.push_back(static_cast<float>(static_cast<int>(next() % 9) - 4) / 4.0f);
  for (int64_t i = 0; i < M; ++i) {
    AlignIndexMolecule m;
    m.id = "lib:" + std::to_string(i + 1);
    m.name = i % 7 == 0 ? "name, with \"quotes\" " + std::to_string(i) : "mol" + std::to_string(i);
    m.smiles = std::string(static_cast<size_t>(i % 5 + 1), 'C');
    m.smiles += 'O';
    m.formula = formulas[next() % 6];
    m.mass = i == 3 ? NAN : 100.0 + 0.25 * static_cast<double>(next() % 400);
    ix.molecules.push_back(m);
  }
  ix.model_fingerprint = "fnv1a64:0123456789abcdef";
  ix.model_path = "some/model.safetensors";
  ix.model_config = "{}";
  ix.source = "random";
  return ix;
}

std::vector<float> dyadic_query(int64_t D, uint64_t seed) {
  uint64_t s = seed * 7919;
  std::vector<float> q;
  for (int64_t k = 0; k < D; ++k) q.push_back(static_cast<float>(static_cast<int>(splitmix(s) % 9) - 4) / 4.0f);
  return q;
}

// The reference: every candidate's dot in double, filters by hand, stable sort by (dot desc, index asc).
std::vector<std::pair<int64_t, double>> brute_force(const AlignIndex& ix, const std::vector<float>& q,
                                                    const std::map<std::string, int64_t>& formula, double mass,
                                                    double tol) {
  std::vector<std::pair<int64_t, double>> all;
  for (int64_t i = 0; i < ix.size(); ++i) {
    const AlignIndexMolecule& m = ix.molecules[static_cast<size_t>(i)];
    if (!std::isnan(mass) && !(std::fabs(m.mass - mass) <= tol)) continue;
    if (!formula.empty() && (m.formula.empty() || parse_formula(m.formula) != formula)) continue;
    double d = 0;
    for (int64_t k = 0; k < ix.dim; ++k) d += static_cast<double>(ix.row(i)[k]) * static_cast<double>(q[k]);
    all.emplace_back(i, d);
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return all;
}

std::unique_ptr<AlignModel> tiny_model(uint64_t seed, const std::string& encoder = "peakset") {
  AlignModelConfig c = AlignModelConfig::tiny();
  c.spectrum_encoder = encoder;
  c.peak_ppm_scale = 0.02;
  auto m = std::make_unique<AlignModel>(c, seed);
  m->eval();
  return m;
}

}  // namespace

TEST_CASE("align index: a file round-trips embeddings, strings and masses") {
  const AlignIndex ix = random_index(37, 24, 5);
  const std::string p32 = temp_root.file("round32.index"), p16 = temp_root.file("round16.index");
  save_align_index(p32, ix);
  save_align_index(p16, ix, StoredFloat::F16);
  const AlignIndex a = load_align_index(p32);
  CHECK(a.dim == ix.dim);
  CHECK(a.embeddings == ix.embeddings);  // bit for bit
  CHECK(a.model_fingerprint == ix.model_fingerprint);
  CHECK(a.model_path == ix.model_path);
  CHECK(a.source == ix.source);
  REQUIRE(a.size() == ix.size());
  for (int64_t i = 0; i < ix.size(); ++i) {
    const auto &x = ix.molecules[static_cast<size_t>(i)], &y = a.molecules[static_cast<size_t>(i)];
    CHECK(x.id == y.id);
    CHECK(x.name == y.name);
    CHECK(x.smiles == y.smiles);
    CHECK(x.formula == y.formula);
    CHECK((std::isnan(x.mass) ? std::isnan(y.mass) : x.mass == y.mass));
  }
  // f16 storage: k/4 values are exact in half precision; other values within half-precision rounding
  const AlignIndex b = load_align_index(p16);
  CHECK(b.embeddings == ix.embeddings);
  AlignIndex odd = ix;
  for (size_t i = 0; i < odd.embeddings.size(); ++i) odd.embeddings[i] = 0.3f + 0.001f * static_cast<float>(i % 97);
  save_align_index(p16, odd, StoredFloat::F16);
  const AlignIndex c = load_align_index(p16);
  for (size_t i = 0; i < odd.embeddings.size(); ++i)
    REQUIRE(std::fabs(c.embeddings[i] - odd.embeddings[i]) <= std::ldexp(std::fabs(odd.embeddings[i]), -11));
  CHECK(std::filesystem::file_size(p16) < std::filesystem::file_size(p32));

  // a file that is not an index, and an inconsistent index, are refused with the file's name
  const std::string other = temp_root.file("other.safetensors");
  save_safetensors(other, {{"x", Tensor::zeros({2})}}, {{"format", "something-else"}});
  CHECK_THROWS_WITH_AS(load_align_index(other), doctest::Contains("other.safetensors"), Error);
  AlignIndex broken = ix;
  broken.embeddings.pop_back();
  CHECK_THROWS_AS(save_align_index(temp_root.file("broken.index"), broken), Error);
}

TEST_CASE("align index: search returns the exact top-k of a brute-force ranking, with filters") {
  const AlignIndex ix = random_index(600, 64, 11);
  for (uint64_t qs : {1u, 2u, 3u}) {
    const std::vector<float> q = dyadic_query(ix.dim, qs);
    struct Case {
      std::string formula;
      double mass, tol;
      int64_t top;
    };
    for (const Case& cs : {Case{"", NAN, 0.5, 10}, Case{"", NAN, 0.5, 600}, Case{"H6C6O", NAN, 0.5, 25},
                           Case{"", 150.0, 10.0, 15}, Case{"C7H8", 150.0, 20.0, 1000}, Case{"C9H10O2", 120.0, 0.25, 5},
                           Case{"C3", NAN, 0.5, 5}}) {
      CAPTURE(qs);
      CAPTURE(cs.formula);
      CAPTURE(cs.mass);
      RetrievalFilter f;
      f.formula = cs.formula;
      f.mass = cs.mass;
      f.mass_tolerance = cs.tol;
      const double scale = 0.125;
      const RetrievalResult r = search_align_index(ix, q, scale, cs.top, f);
      const auto ref = brute_force(ix, q, cs.formula.empty() ? std::map<std::string, int64_t>{} : parse_formula(cs.formula),
                                   cs.mass, cs.tol);
      CHECK(r.library == ix.size());
      CHECK(r.candidates == static_cast<int64_t>(ref.size()));
      REQUIRE(r.hits.size() == std::min<size_t>(static_cast<size_t>(cs.top), ref.size()));
      double max_logit = -INFINITY, z = 0;
      for (const auto& [i, d] : ref) max_logit = std::max(max_logit, scale * d);
      for (const auto& [i, d] : ref) z += std::exp(scale * d - max_logit);
      double psum = 0;
      for (size_t k = 0; k < r.hits.size(); ++k) {
        CHECK(r.hits[k].rank == static_cast<int64_t>(k) + 1);
        CHECK(r.hits[k].molecule == ref[k].first);
        CHECK(r.hits[k].score == scale * ref[k].second);
        CHECK(r.hits[k].probability == doctest::Approx(std::exp(scale * ref[k].second - max_logit) / z).epsilon(1e-12));
        psum += r.hits[k].probability;
      }
      if (r.hits.size() == ref.size() && !ref.empty()) CHECK(psum == doctest::Approx(1.0).epsilon(1e-12));
      if (!std::isnan(cs.mass))
        for (const RetrievalHit& h : r.hits) CHECK(std::fabs(ix.molecules[static_cast<size_t>(h.molecule)].mass - cs.mass) <= cs.tol);
    }
  }
  // the random library really has tied scores, so the tie rule was exercised
  const std::vector<float> q = dyadic_query(ix.dim, 1);
  const auto ref = brute_force(ix, q, {}, NAN, 0);
  bool tie = false;
  for (size_t k = 1; k < ref.size(); ++k) tie = tie || ref[k].second == ref[k - 1].second;
  CHECK(tie);

  // bad arguments
  CHECK_THROWS_WITH_AS(search_align_index(ix, std::vector<float>(5, 0.f), 1.0, 5), doctest::Contains("5 values"), Error);
  CHECK_THROWS_AS(search_align_index(ix, q, 1.0, 0), Error);
  CHECK_THROWS_AS(search_align_index(ix, q, 0.0, 5), Error);
  RetrievalFilter bad;
  bad.formula = "C9H1x";
  CHECK_THROWS_WITH_AS(search_align_index(ix, q, 1.0, 5, bad), doctest::Contains("C9H1x"), Error);
  bad.formula = "";
  bad.mass = 100;
  bad.mass_tolerance = -1;
  CHECK_THROWS_AS(search_align_index(ix, q, 1.0, 5, bad), Error);
}

TEST_CASE("align index: formulas and monoisotopic masses") {
  CHECK(parse_formula("C9H10O2") == std::map<std::string, int64_t>{{"C", 9}, {"H", 10}, {"O", 2}});
  CHECK(parse_formula("H10O2C9") == parse_formula("C9H10O2"));
  CHECK(parse_formula("CH3CH2Cl") == std::map<std::string, int64_t>{{"C", 2}, {"H", 5}, {"Cl", 1}});
  CHECK(hill_formula_of_counts(parse_formula("OH10C9O")) == "C9H10O2");
  CHECK(hill_formula_of_counts(parse_formula("ClNa")) == "ClNa");
  for (const char* bad : {"", "c6h6", "C6H6+", "C0H2", "Xx2", "C6(H6)"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(parse_formula(bad), Error);
  }
  // ethanol C2H6O: 2 x 12 + 6 x 1.00782503207 + 15.99491461956
  Molecule m;
  for (int z : {6, 6, 8, 1, 1, 1, 1, 1, 1}) {
    Atom a;
    a.element = static_cast<uint8_t>(z);
    m.atoms.push_back(a);
  }
  CHECK(monoisotopic_mass(m) == doctest::Approx(46.04186481).epsilon(1e-10));
  m.atoms[0].element = 43;  // technetium: no stable isotope, not in the table
  CHECK(std::isnan(monoisotopic_mass(m)));
}

TEST_CASE("align index: model fingerprints tell models apart and a mismatched index is refused") {
  auto a = tiny_model(1), b = tiny_model(2);
  const std::string fa = align_model_fingerprint(*a), fb = align_model_fingerprint(*b);
  CHECK(fa.rfind("fnv1a64:", 0) == 0);
  CHECK(fa != fb);
  CHECK(fa == align_model_fingerprint(*a));
  // the same weights through a checkpoint file give the same fingerprint
  const std::string ckpt = temp_root.file("tiny_align.safetensors");
  save_checkpoint(ckpt, *a,
                  {{"task", "align"},
                   {"model_config", a->config().to_json()},
                   {"data_options", R"({"use_assigned":true,"use_peak_sets":true})"}});
  LoadedAlignModel loaded = load_align_model(ckpt);
  CHECK(align_model_fingerprint(*loaded.model) == fa);

  const Dataset ds = test::chain_dataset();
  AlignIndex ix = build_align_index(*a, ds);
  ix.model_path = ckpt;
  CHECK(ix.model_fingerprint == fa);
  CHECK_NOTHROW(check_align_index_model(ix, "lib.index", *loaded.model, fa, ckpt));
  CHECK_THROWS_WITH_AS(check_align_index_model(ix, "lib.index", *b, fb, "other.safetensors"),
                       doctest::Contains("different model"), Error);
  AlignModelConfig wide = AlignModelConfig::tiny();
  wide.projection_dim = 16;
  AlignModel w(wide, 1);
  CHECK_THROWS_WITH_AS(check_align_index_model(ix, "lib.index", w, align_model_fingerprint(w), "wide.safetensors"),
                       doctest::Contains("16"), Error);
}

TEST_CASE("align index: an index built from a dataset holds each molecule's own embedding and mass") {
  const Dataset ds = test::chain_dataset();
  for (const char* encoder : {"peakset", "cnn"}) {
    auto model = tiny_model(4, encoder);
    int64_t skipped = -1;
    const AlignIndex ix = build_align_index(*model, ds, 3, &skipped);  // batches of 3: several batches
    CHECK(skipped == 0);
    REQUIRE(ix.size() == static_cast<int64_t>(ds.entries.size()));
    CHECK(ix.dim == model->config().projection_dim);
    for (int64_t i = 0; i < ix.size(); ++i) {
      const Molecule& mol = ds.entries[static_cast<size_t>(i)].mol;
      NoGradGuard ng;
      const std::vector<float> alone =
          model->encode_graph(make_align_batch({align_graph_input(mol)})).molecule.to_vector<float>();
      for (int64_t k = 0; k < ix.dim; ++k) REQUIRE(ix.row(i)[k] == doctest::Approx(alone[static_cast<size_t>(k)]).epsilon(1e-5));
      const AlignIndexMolecule& m = ix.molecules[static_cast<size_t>(i)];
      CHECK(m.id == mol.id);
      int c = 0, o = 0, h = 0;
      for (const Atom& a : mol.atoms) (a.element == 6 ? c : a.element == 8 ? o : h) += 1;
      CHECK(m.mass == doctest::Approx(12.0 * c + 15.99491461956 * o + 1.00782503207 * h).epsilon(1e-12));
    }
    CHECK_FALSE(model->is_training());
  }
}

TEST_CASE("align index: peak-list queries follow the training convention and bad lists are errors") {
  for (const char* encoder : {"peakset", "cnn"}) {
    CAPTURE(encoder);
    auto model = tiny_model(6, encoder);
    const std::vector<Peak> peaks = peaks_of({{171.1, 0}, {60.4, 2}, {21.0, 3}, {14.2, 3}});
    const std::vector<float> q = embed_peak_list(*model, peaks);
    CHECK(static_cast<int64_t>(q.size()) == model->config().projection_dim);
    // order and exact repeats do not matter (distinct pairs, as the training spectra)
    const std::vector<float> shuffled =
        embed_peak_list(*model, peaks_of({{14.2, 3}, {171.1, 0}, {21.0, 3}, {60.4, 2}, {14.2, 3}}));
    CHECK(shuffled == q);
    // the same as the batch the data side builds for this spectrum
    AlignMoleculeInput in;
    in.peak_ppm = {14.2f, 21.0f, 60.4f, 171.1f};
    in.peak_multiplicity = {3, 3, 2, 0};
    NoGradGuard ng;
    const std::vector<float> ref = model->encode_spectrum(make_align_batch({in})).to_vector<float>();
    CHECK(ref == q);
    // no multiplicity -> class 4 (unknown): a different query for the peak-set encoder
    if (std::string(encoder) == "peakset") CHECK(embed_peak_list(*model, peaks_of({{171.1, -1}, {60.4, -1}})) != q);
  }
  auto model = tiny_model(6);
  CHECK_THROWS_WITH_AS(embed_peak_list(*model, {}, "empty.txt"), doctest::Contains("empty.txt: the peak list is empty"), Error);
  CHECK_THROWS_WITH_AS(embed_peak_list(*model, peaks_of({{20.0, 3}, {412.0, 0}}), "far.txt"),
                       doctest::Contains("far.txt: peak 2 at 412 ppm is outside"), Error);
  CHECK_THROWS_WITH_AS(embed_peak_list(*model, peaks_of({{NAN, 3}}), "nan.txt"), doctest::Contains("nan.txt: peak 1"), Error);
  CHECK_THROWS_WITH_AS(parse_peak_list_text("171.1 S\nabc\n", "bad.txt"), doctest::Contains("bad.txt:2"), Error);
  CHECK_THROWS_AS(parse_peak_list_text("# nothing\n", "none.txt"), Error);
}

TEST_CASE("align index: search time on a synthetic 50,000-molecule index (manual: --no-skip)" * doctest::skip()) {
  const int64_t M = 50000, D = 512;
  AlignIndex ix = random_index(M, D, 17);
  const std::string path = temp_root.file("synthetic50k.index");
  auto t0 = std::chrono::steady_clock::now();
  save_align_index(path, ix);
  const double t_save = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  const AlignIndex loaded = load_align_index(path);
  const double t_load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::vector<float> q = dyadic_query(D, 9);
  RetrievalResult r;
  const int reps = 20;
  t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < reps; ++k) r = search_align_index(loaded, q, 0.044194173824159216, 10);
  const double t_search = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  RetrievalFilter f;
  f.formula = "C7H8";
  f.mass = 150;
  f.mass_tolerance = 25;
  t0 = std::chrono::steady_clock::now();
  const RetrievalResult rf = search_align_index(loaded, q, 0.044194173824159216, 10, f);
  const double t_filtered = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("50,000 x 512 index: file " << std::filesystem::file_size(path) / 1e6 << " MB, save " << t_save << " s, load "
                                      << t_load << " s; search (top 10) " << 1e3 * t_search << " ms, with formula + mass filter "
                                      << 1e3 * t_filtered << " ms (" << rf.candidates << " candidates)");
  const auto ref = brute_force(loaded, q, {}, NAN, 0);
  for (size_t k = 0; k < r.hits.size(); ++k) CHECK(r.hits[k].molecule == ref[k].first);
}
