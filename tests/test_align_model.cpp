// layers/align_batch + layers/align_model: the config's JSON round trip and validation, the batch contract's
// validation, output shapes, GIN permutation equivariance and molecule independence, peak-set invariance to
// peak order and padding, the two-chunk Conv1d and the whole CReSS CNN against direct loops, the two-level
// loss against a hand computation in long double (soft and hard targets, each gradient side), finite-difference
// gradients of the whole model, and a tiny overfit. Batches are built by hand (AlignBatch is plain tensors),
// so nothing here needs the chemistry library.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <string>

#include "engine/rng.h"
#include "kernels/ops.h"
#include "layers/align_model.h"
#include "layers/optim.h"
#include "tests/test_util.h"

using namespace larmor;

namespace {

// A molecule by hand: node rows [atomic number - 1, chirality, hybridisation], bonds (a, b, type, dir), and
// the carbons' assigned shifts (ppm, multiplicity class); its molecule-level peaks are those shifts.
struct HandMol {
  std::vector<std::array<int32_t, 3>> nodes;
  std::vector<std::array<int32_t, 4>> bonds;
  std::vector<std::pair<int32_t, std::pair<float, int32_t>>> carbons;  // node, (ppm, class)
};

AlignMoleculeInput to_input(const HandMol& m) {
  AlignMoleculeInput in;
  for (auto& n : m.nodes) in.node_features.insert(in.node_features.end(), n.begin(), n.end());
  std::vector<int32_t> src, dst;
  for (auto& b : m.bonds) {  // bond k -> edges 2k (a->b), 2k+1 (b->a), as chem::MoleculeFeatures
    src.push_back(b[0]);
    dst.push_back(b[1]);
    src.push_back(b[1]);
    dst.push_back(b[0]);
    for (int r = 0; r < 2; ++r) {
      in.edge_features.push_back(b[2]);
      in.edge_features.push_back(b[3]);
    }
  }
  in.edge_index = src;
  in.edge_index.insert(in.edge_index.end(), dst.begin(), dst.end());
  for (auto& [node, pm] : m.carbons) {
    in.carbon_nodes.push_back(node);
    in.carbon_ppm.push_back(pm.first);
    in.carbon_multiplicity.push_back(pm.second);
    in.peak_ppm.push_back(pm.first);
    in.peak_multiplicity.push_back(pm.second);
  }
  return in;
}

constexpr int32_t C = 5, N = 6, O = 7;  // atomic number - 1
// ethanol, acetic acid, acetonitrile, isopropanol (heavy atoms; 13C shifts in CDCl3)
std::vector<HandMol> hand_molecules() {
  return {
      {{{C, 0, 3}, {C, 0, 3}, {O, 0, 3}}, {{0, 1, 0, 0}, {1, 2, 0, 0}}, {{0, {18.1f, 3}}, {1, {58.0f, 2}}}},
      {{{C, 0, 3}, {C, 0, 2}, {O, 0, 2}, {O, 0, 3}}, {{0, 1, 0, 0}, {1, 2, 1, 0}, {1, 3, 0, 0}}, {{0, {20.8f, 3}}, {1, {177.9f, 0}}}},
      {{{C, 0, 3}, {C, 0, 1}, {N, 0, 1}}, {{0, 1, 0, 0}, {1, 2, 2, 0}}, {{0, {1.8f, 3}}, {1, {117.7f, 0}}}},
      {{{C, 0, 3}, {C, 0, 3}, {O, 0, 3}, {C, 0, 3}},
       {{0, 1, 0, 0}, {1, 2, 0, 0}, {1, 3, 0, 0}},
       {{0, {25.3f, 3}}, {1, {64.0f, 1}}, {3, {25.3f, 3}}}},
  };
}

// A random connected molecule: a random tree plus a few extra bonds, random features.
HandMol random_mol(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> r = rng.integers({8 * n}, 0, 1 << 20).to_vector<int32_t>();
  size_t k = 0;
  auto next = [&](int32_t mod) { return r[k++ % r.size()] % mod; };
  HandMol m;
  const int32_t types[] = {C, C, C, N, O};
  for (int i = 0; i < n; ++i) m.nodes.push_back({types[next(5)], next(3), next(6)});
  m.nodes[0][0] = C;
  for (int i = 1; i < n; ++i) m.bonds.push_back({next(i), i, next(4), next(3)});
  for (int extra = 0; extra < n / 3; ++extra) {
    int a = next(n), b = next(n);
    bool exists = a == b;
    for (auto& bd : m.bonds) exists = exists || (bd[0] == a && bd[1] == b) || (bd[0] == b && bd[1] == a);
    if (!exists) m.bonds.push_back({a, b, next(4), next(3)});
  }
  for (int i = 0; i < n; ++i)
    if (m.nodes[i][0] == C) m.carbons.push_back({i, {static_cast<float>(10 + 15 * i + next(100) * 0.1), next(5)}});
  return m;
}

AlignBatch batch_of(const std::vector<HandMol>& mols, int64_t min_peaks = 0) {
  std::vector<AlignMoleculeInput> in;
  for (auto& m : mols) in.push_back(to_input(m));
  return make_align_batch(in, min_peaks);
}

AlignModelConfig test_config(const std::string& encoder = "cnn", bool shared = true) {
  AlignModelConfig c = AlignModelConfig::tiny();
  c.spectrum_encoder = encoder;
  c.shared_graph_encoder = shared;
  return c;
}

using test::all_finite;  // tests/test_util.h
using test::error_of;
using test::max_abs_diff;
using test::to_f64;

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

}  // namespace

TEST_CASE("AlignModelConfig: defaults, validation and JSON round trip") {
  AlignModelConfig d;
  CHECK(d.gin_layers == 5);
  CHECK(d.gin_dim == 128);
  CHECK(d.gin_hidden == 256);
  CHECK(d.gin_dropout == 0.2);
  CHECK(d.peak_dim == 128);
  CHECK(d.spectrum_dim == 768);
  CHECK(d.projection_dim == 512);
  CHECK(d.projection_dropout == 0.1);
  CHECK(d.cnn_flat_dim() == 672);
  CHECK(d.alpha == 0.1);
  CHECK(d.soft_n == 5);
  CHECK(d.soft_p == 1);
  CHECK(d.soft_targets);
  CHECK(d.shared_graph_encoder);
  CHECK(d.molecule_gradient == "both");
  CHECK(d.logit_scale == doctest::Approx(1.0 / std::sqrt(512.0)));
  CHECK_FALSE(d.node_hydrogens);  // K-M3AID's featurisation and peak encoder
  CHECK(d.peak_basis == 0);
  d.validate();
  CHECK(AlignModelConfig::from_json(d.to_json()) == d);
  {
    AlignModelConfig h = d;
    h.node_hydrogens = true;
    h.peak_basis = 32;
    h.peak_basis_min = -10;
    CHECK(AlignModelConfig::from_json(h.to_json()) == h);
    h.peak_basis = -1;
    CHECK_THROWS_WITH_AS(h.validate(), doctest::Contains("peak_basis"), Error);
    h.peak_basis = 8;
    h.peak_basis_max = -20;
    CHECK_THROWS_WITH_AS(h.validate(), doctest::Contains("peak_basis_min"), Error);
  }
  AlignModelConfig c = AlignModelConfig::tiny();
  c.spectrum_encoder = "peakset";
  c.shared_graph_encoder = false;
  c.alpha = 0.5;
  c.soft_n = 2.5;
  c.soft_p = -1;
  c.soft_targets = false;
  c.molecule_gradient = "graph";
  c.peak_ppm_scale = 0.01;
  c.logit_scale = 0.25;
  CHECK(AlignModelConfig::from_json(c.to_json()) == c);
  CHECK(AlignModelConfig::from_json(R"({"alpha": 0.2})").alpha == 0.2);
  CHECK(AlignModelConfig::from_json(R"({"alpha": 0.2})").gin_layers == 5);

  auto fails_with = [](const std::string& json, const char* word) {
    std::string msg = error_of([&] { AlignModelConfig::from_json(json); });
    CHECK_MESSAGE(msg.find(word) != std::string::npos, json << " -> '" << msg << "'");
  };
  fails_with(R"({"gin_layer": 3})", "gin_layer");
  fails_with(R"({"spectrum_encoder": "rnn"})", "spectrum_encoder");
  fails_with(R"({"molecule_gradient": "none"})", "molecule_gradient");
  fails_with(R"({"alpha": 1.5})", "alpha");
  fails_with(R"({"gin_dropout": 1.0})", "gin_dropout");
  fails_with(R"({"gin_dim": 0})", "gin_dim");
  fails_with(R"({"gin_dim": "wide"})", "gin_dim");
  fails_with(R"({"soft_n": 1000})", "soft_n");
  fails_with(R"({"peak_ppm_scale": 0})", "peak_ppm_scale");
  fails_with(R"({"logit_scale": -1})", "logit_scale");
  fails_with(R"({"num_atom_types": 5})", "num_atom_types");
  fails_with("not json", "invalid JSON");
  AlignModelConfig bad = AlignModelConfig::tiny();
  bad.projection_dropout = -0.1;
  CHECK_THROWS_AS(AlignModel(bad, 1), Error);
}

TEST_CASE("AlignBatch: make_align_batch layout, spectrum binning, and validation errors name the field") {
  std::vector<HandMol> mols = hand_molecules();
  AlignBatch b = batch_of(mols, 5);
  CHECK(b.batch_size() == 4);
  CHECK(b.num_nodes() == 14);
  CHECK(b.num_edges() == 2 * 10);
  CHECK(b.num_carbons() == 9);
  CHECK(b.max_peaks() == 5);
  CHECK(b.node_offsets.to_vector<int32_t>() == std::vector<int32_t>{0, 3, 7, 10, 14});
  CHECK(b.carbon_offsets.to_vector<int32_t>() == std::vector<int32_t>{0, 2, 4, 6, 9});
  CHECK(b.carbon_nodes.to_vector<int32_t>() == std::vector<int32_t>{0, 1, 3, 4, 7, 8, 10, 11, 13});
  // acetic acid's bond 1 -> 2 (double) is its edge 2: global edge 4 + 2 = 6, nodes 4 -> 5
  std::vector<int32_t> ei = b.edge_index.to_vector<int32_t>();
  CHECK(ei[6] == 4);
  CHECK(ei[20 + 6] == 5);
  CHECK(b.edge_features.to_vector<int32_t>()[6 * 2] == 1);
  CHECK(b.peak_mask.to_vector<int32_t>() == std::vector<int32_t>{1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0});
  std::vector<float> spec = b.spectrum.to_vector<float>();
  CHECK(std::accumulate(spec.begin(), spec.begin() + 4000, 0.0f) == 2.0f);
  CHECK(spec[681] == 1.0f);            // 18.1 ppm: (18.1 + 50) * 10 = 681
  CHECK(spec[3 * 4000 + 753] == 1.0f);  // isopropanol's two 25.3 ppm carbons share bin 753
  CHECK(std::accumulate(spec.begin() + 3 * 4000, spec.end(), 0.0f) == 2.0f);
  CHECK(spectrum_bin(-50.0) == 0);
  CHECK(spectrum_bin(-60.0) == 0);
  CHECK(spectrum_bin(0.0) == 500);
  CHECK(spectrum_bin(12.34) == 623);
  CHECK(spectrum_bin(349.9) == 3999);
  CHECK(spectrum_bin(400.0) == 3999);
  CHECK_THROWS_AS(spectrum_bin(std::nan("")), Error);

  auto expect_error = [&](AlignBatch bad, const char* field) {
    std::string msg = error_of([&] { bad.validate(); });
    CHECK_MESSAGE(msg.find(field) != std::string::npos, field << " -> '" << msg << "'");
  };
  AlignBatch bad = b;
  std::vector<int32_t> e = ei;
  e[0] = 5;  // ethanol's first edge now starts in acetic acid
  bad.edge_index = Tensor::from_vector<int32_t>(e, {2, 20});
  expect_error(bad, "joins molecules");
  e = ei;
  e[20] = e[0];
  bad.edge_index = Tensor::from_vector<int32_t>(e, {2, 20});
  expect_error(bad, "self loop");
  bad = b;
  bad.carbon_nodes = Tensor::from_vector<int32_t>({0, 2, 3, 4, 7, 8, 10, 11, 13}, {9});  // node 2 is O
  expect_error(bad, "not a carbon");
  bad = b;
  bad.carbon_nodes = Tensor::from_vector<int32_t>({0, 1, 3, 4, 7, 8, 10, 13, 11}, {9});
  expect_error(bad, "carbon_nodes");
  bad = b;
  bad.carbon_offsets = Tensor::from_vector<int32_t>({0, 3, 4, 6, 9}, {5});  // molecule 0 claims node 3
  expect_error(bad, "not a node of molecule 0");
  bad = b;
  bad.node_offsets = Tensor::from_vector<int32_t>({0, 3, 7, 10, 13}, {5});
  expect_error(bad, "node_offsets");
  bad = b;
  bad.peak_multiplicity = Tensor::full({4, 5}, 5, DType::I32);
  expect_error(bad, "peak_multiplicity");
  bad = b;
  bad.peak_mask = Tensor::ones({4, 4}, DType::I32);
  expect_error(bad, "peak_mask");
  bad = b;
  bad.spectrum = Tensor::zeros({4, 3999});
  expect_error(bad, "spectrum");
  bad = b;
  bad.carbon_ppm = Tensor::full({9}, std::nan(""));
  expect_error(bad, "carbon_ppm");
  bad = b;
  bad.carbon_multiplicity = Tensor();
  expect_error(bad, "carbon_multiplicity");
  bad = b;
  bad.edge_features = Tensor::full({20, 2}, 4, DType::I32);
  expect_error(bad, "edge_features");
  bad = b;
  bad.node_features = Tensor::zeros({14, 3}, DType::F32);
  expect_error(bad, "node_features");
  bad = b;
  bad.entries = {1, 2};
  expect_error(bad, "entries");

  // node_hydrogens: concatenated when every molecule has it, left undefined otherwise, checked when present
  {
    std::vector<AlignMoleculeInput> ms;
    for (const HandMol& m : hand_molecules()) {
      ms.push_back(to_input(m));
      ms.back().node_hydrogens.assign(m.nodes.size(), 1);
    }
    ms[1].node_hydrogens[0] = 3;
    const AlignBatch h = make_align_batch(ms);
    REQUIRE(h.node_hydrogens.defined());
    std::vector<int32_t> hv = h.node_hydrogens.to_vector<int32_t>();
    CHECK(static_cast<int64_t>(hv.size()) == h.num_nodes());
    CHECK(hv[static_cast<size_t>(h.node_offsets.to_vector<int32_t>()[1])] == 3);
    AlignBatch bad_h = h;
    hv[0] = 5;
    bad_h.node_hydrogens = Tensor::from_vector<int32_t>(hv, {h.num_nodes()});
    expect_error(bad_h, "node_hydrogens");
    ms[2].node_hydrogens.clear();
    CHECK_FALSE(make_align_batch(ms).node_hydrogens.defined());
    ms[2].node_hydrogens.assign(1, 0);  // wrong length
    CHECK_THROWS_WITH_AS(make_align_batch(ms), doctest::Contains("node_hydrogens"), Error);
  }
}

TEST_CASE("AlignModel: output shapes, parameter names, bad input") {
  AlignBatch b = batch_of(hand_molecules());
  for (const char* enc : {"cnn", "peakset"})
    for (bool shared : {true, false}) {
      AlignModel model(test_config(enc, shared), 3);
      model.eval();
      AlignGraphEmbeddings g = model.encode_graph(b);
      CHECK(g.molecule.shape() == Shape{4, 8});
      CHECK(g.carbon.shape() == Shape{9, 8});
      Tensor s = model.encode_spectrum(b);
      CHECK(s.shape() == Shape{4, 8});
      Tensor p = model.encode_peaks(b);
      CHECK(p.shape() == Shape{9, 8});
      CHECK(all_finite(g.molecule));
      CHECK(all_finite(g.carbon));
      CHECK(all_finite(s));
      CHECK(all_finite(p));
      AlignLossParts parts;
      Tensor l = model.loss(b, &parts);
      CHECK(l.shape() == Shape{});
      CHECK(std::isfinite(parts.total));
      CHECK(parts.total == doctest::Approx(0.1 * parts.molecule + 0.9 * parts.atom));
      CHECK(parts.carbons == 9);
      auto st = model.state_dict();
      for (const char* name : {"gin.atom_emb.weight", "gin.chirality_emb.weight", "gin.hybridization_emb.weight",
                               "gin.layers.1.bond_type_emb.weight", "gin.layers.1.bond_direction_emb.weight",
                               "gin.layers.0.fc1.weight", "gin.layers.1.bn.running_var", "graph_pool.layers.1.weight",
                               "peak_encoder.multiplicity_emb.weight", "spectrum_projection.ln.weight",
                               "peak_projection.fc.weight", "graph_projection.fc2.bias", "node_projection.fc.weight"})
        CHECK_MESSAGE(st.count(name) == 1, name);
      CHECK(st.at("gin.layers.0.bond_type_emb.weight").shape() == Shape{5, 8});
      CHECK(st.at("gin.atom_emb.weight").shape() == Shape{120, 8});
      CHECK(st.count("gin_atom.layers.0.fc1.weight") == (shared ? 0u : 1u));
      if (std::string(enc) == "cnn") {
        CHECK(st.at("spectrum_encoder.conv_weight").shape() == Shape{2, 1, 400});
        CHECK(st.at("spectrum_encoder.res1_fc1.weight").shape() == Shape{42, 42});
        CHECK(st.at("spectrum_encoder.out.weight").shape() == Shape{12, 42});
      } else {
        CHECK(st.at("spectrum_encoder.peak.multiplicity_emb.weight").shape() == Shape{5, 8});
        CHECK(st.at("spectrum_encoder.fc1.weight").shape() == Shape{12, 16});
      }
      CHECK(align_model_decay("gin.layers.0.fc1.weight", st.at("gin.layers.0.fc1.weight")));
      CHECK(!align_model_decay("gin.layers.0.fc1.bias", st.at("gin.layers.0.fc1.bias")));
      CHECK(!align_model_decay("gin.atom_emb.weight", st.at("gin.atom_emb.weight")));
    }

  AlignModel model(test_config(), 4);
  AlignBatch bad = b;
  std::vector<int32_t> f = b.node_features.to_vector<int32_t>();
  f[3 * 2 + 2] = 6;  // hybridisation 6 is outside the table of 6
  bad.node_features = Tensor::from_vector<int32_t>(f, {14, 3});
  std::string msg = error_of([&] { model.encode_graph(bad); });
  CHECK_MESSAGE(msg.find("hybridisation") != std::string::npos, msg);
  bad = b;
  bad.spectrum = Tensor();
  CHECK_THROWS_AS(model.encode_spectrum(bad), Error);
  bad = b;
  bad.carbon_ppm = Tensor();
  bad.carbon_multiplicity = Tensor();
  CHECK(model.encode_graph(bad).carbon.shape() == Shape{9, 8});  // inference needs no assigned shifts
  CHECK_THROWS_AS(model.loss(bad), Error);
  CHECK_THROWS_AS(model.encode_peak_list(Tensor::zeros({3}), Tensor::full({3}, 5, DType::I32)), Error);
  CHECK(model.encode_peak_list(Tensor::zeros({3}), Tensor::full({3}, 4, DType::I32)).shape() == Shape{3, 8});
}

TEST_CASE("CressCnnEncoder: the encoder output (before the projection) is L2-normalised") {
  AlignBatch b = batch_of(hand_molecules());
  CressCnnEncoder enc(test_config("cnn"), 9, DType::F64);
  std::vector<double> norms = to_f64(sum(square(enc.forward(b.spectrum.to(DType::F64))), {1}));
  for (double n : norms) CHECK(n == doctest::Approx(1.0).epsilon(1e-12));
}

TEST_CASE("AlignModel: GIN is permutation-equivariant and molecules in a batch do not interact (eval)") {
  for (bool shared : {true, false}) {
    AlignModel model(test_config("cnn", shared), 21, DType::F64);
    model.eval();
    HandMol m = random_mol(9, 77);
    REQUIRE(m.carbons.size() >= 3);
    AlignGraphEmbeddings ref = model.encode_graph(batch_of({m}));

    // permute nodes (new index of old node i is pos[i]) and shuffle the bond order
    std::vector<int32_t> pos = {4, 7, 0, 8, 2, 6, 1, 3, 5};
    HandMol pm;
    pm.nodes.resize(m.nodes.size());
    for (size_t i = 0; i < m.nodes.size(); ++i) pm.nodes[pos[i]] = m.nodes[i];
    for (size_t k = m.bonds.size(); k-- > 0;) {
      auto bd = m.bonds[k];
      pm.bonds.push_back({pos[bd[1]], pos[bd[0]], bd[2], bd[3]});
    }
    std::vector<std::pair<int32_t, size_t>> order;  // (new node, old carbon row)
    for (size_t k = 0; k < m.carbons.size(); ++k) order.push_back({pos[m.carbons[k].first], k});
    std::sort(order.begin(), order.end());
    for (auto& [node, k] : order) pm.carbons.push_back({node, m.carbons[k].second});
    AlignGraphEmbeddings perm = model.encode_graph(batch_of({pm}));
    CHECK(max_abs_diff(to_f64(ref.molecule), to_f64(perm.molecule)) < 1e-10);
    std::vector<double> rc = to_f64(ref.carbon), pc = to_f64(perm.carbon);
    const size_t D = 8;
    double worst = 0;
    for (size_t r = 0; r < order.size(); ++r)
      for (size_t d = 0; d < D; ++d) worst = std::max(worst, std::fabs(pc[r * D + d] - rc[order[r].second * D + d]));
    CHECK(worst < 1e-10);
    // and the embeddings are not trivially equal across carbons
    CHECK(max_abs_diff(std::vector<double>(rc.begin(), rc.begin() + D), std::vector<double>(rc.begin() + D, rc.begin() + 2 * D)) > 1e-6);

    // molecule independence: m alone vs after two other molecules
    AlignGraphEmbeddings both = model.encode_graph(batch_of({random_mol(6, 78), hand_molecules()[3], m}));
    std::vector<double> bm = to_f64(both.molecule), bc = to_f64(both.carbon);
    CHECK(max_abs_diff(std::vector<double>(bm.begin() + 2 * D, bm.end()), to_f64(ref.molecule)) < 1e-12);
    CHECK(max_abs_diff(std::vector<double>(bc.end() - static_cast<int64_t>(rc.size()), bc.end()), rc) < 1e-12);
  }
}

TEST_CASE("AlignModel: the peak-set encoder is invariant to peak order and padding") {
  AlignModel model(test_config("peakset"), 31, DType::F64);
  model.eval();
  std::vector<HandMol> mols = {random_mol(8, 5), random_mol(6, 6)};
  std::vector<AlignMoleculeInput> in;
  for (auto& m : mols) in.push_back(to_input(m));
  REQUIRE(in[0].peak_ppm.size() >= 3);
  std::vector<double> ref = to_f64(model.encode_spectrum(make_align_batch(in)));
  // reverse the peaks of molecule 0 and rotate those of molecule 1, pad to 11
  std::vector<AlignMoleculeInput> shuffled = in;
  std::reverse(shuffled[0].peak_ppm.begin(), shuffled[0].peak_ppm.end());
  std::reverse(shuffled[0].peak_multiplicity.begin(), shuffled[0].peak_multiplicity.end());
  std::rotate(shuffled[1].peak_ppm.begin(), shuffled[1].peak_ppm.begin() + 1, shuffled[1].peak_ppm.end());
  std::rotate(shuffled[1].peak_multiplicity.begin(), shuffled[1].peak_multiplicity.begin() + 1, shuffled[1].peak_multiplicity.end());
  AlignBatch b = make_align_batch(shuffled, 11);
  CHECK(b.max_peaks() == 11);
  CHECK(max_abs_diff(to_f64(model.encode_spectrum(b)), ref) < 1e-10);
  // padding content is ignored: garbage (finite) ppm and classes in the padded slots
  std::vector<float> ppm = b.peak_ppm.to_vector<float>();
  std::vector<int32_t> mult = b.peak_multiplicity.to_vector<int32_t>(), mask = b.peak_mask.to_vector<int32_t>();
  for (size_t i = 0; i < ppm.size(); ++i)
    if (!mask[i]) {
      ppm[i] = 123.0f + static_cast<float>(i);
      mult[i] = static_cast<int32_t>(i % 5);
    }
  b.peak_ppm = Tensor::from_vector<float>(ppm, {2, 11});
  b.peak_multiplicity = Tensor::from_vector<int32_t>(mult, {2, 11});
  CHECK(max_abs_diff(to_f64(model.encode_spectrum(b)), ref) < 1e-10);
  // but a real peak does matter
  shuffled[0].peak_ppm[0] += 1.0f;
  CHECK(max_abs_diff(to_f64(model.encode_spectrum(make_align_batch(shuffled))), ref) > 1e-6);
}

TEST_CASE("conv1d_two_chunk equals a direct Conv1d(k = 2s, stride s, padding s)") {
  const int64_t B = 2, L = 12, s = 3, Cout = 3, K = 2 * s, T = L / s + 1;
  Rng rng(8);
  Tensor x = rng.normal({B, L}, 0, 1, DType::F64), w = rng.normal({Cout, 1, K}, 0, 1, DType::F64),
         bias = rng.normal({Cout}, 0, 1, DType::F64);
  Tensor y = conv1d_two_chunk(x, w, bias, s);
  REQUIRE(y.shape() == Shape{B, Cout, T});
  std::vector<double> xv = to_f64(x), wv = to_f64(w), bv = to_f64(bias), yv = to_f64(y);
  double worst = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < Cout; ++c)
      for (int64_t t = 0; t < T; ++t) {
        double acc = bv[c];
        for (int64_t k = 0; k < K; ++k) {
          int64_t i = t * s + k - s;  // input index under padding s
          if (i >= 0 && i < L) acc += wv[c * K + k] * xv[b * L + i];
        }
        worst = std::max(worst, std::fabs(acc - yv[(b * Cout + c) * T + t]));
      }
  CHECK(worst < 1e-12);
  CHECK_THROWS_AS(conv1d_two_chunk(Tensor::zeros({2, 13}, DType::F64), w, bias, s), Error);
  CHECK_THROWS_AS(conv1d_two_chunk(x, Tensor::zeros({3, 1, 5}, DType::F64), bias, s), Error);
}

TEST_CASE("CressCnnEncoder equals a direct-loop CReSS reference") {
  AlignModelConfig c = test_config("cnn");
  CressCnnEncoder enc(c, 17, DType::F64);
  auto st = enc.state_dict();
  auto W = [&](const char* n) { return to_f64(st.at(n)); };
  std::vector<float> peaks1 = {18.1f, 58.0f, 128.5f, -49.0f}, peaks2 = {177.9f, 20.8f, 300.0f};
  std::vector<double> spec;
  for (auto* p : {&peaks1, &peaks2}) {
    std::vector<float> s = bin_spectrum(*p);
    spec.insert(spec.end(), s.begin(), s.end());
  }
  // a dense part too, so that every conv window sees data
  for (size_t i = 0; i < spec.size(); i += 7) spec[i] += 0.25 * std::sin(0.01 * static_cast<double>(i));
  Tensor x = Tensor::from_vector<double>(spec, {2, 4000});
  std::vector<double> out = to_f64(enc.forward(x));

  const int64_t Ch = c.cnn_channels, T = 21, F = Ch * T, S = c.spectrum_dim;
  std::vector<double> cw = W("conv_weight"), cb = W("conv_bias");
  auto linear = [](const std::vector<double>& w, const std::vector<double>& b, const std::vector<double>& v, int64_t out_n) {
    const int64_t in_n = static_cast<int64_t>(v.size());
    std::vector<double> y(out_n);
    for (int64_t o = 0; o < out_n; ++o) {
      double acc = b[o];
      for (int64_t i = 0; i < in_n; ++i) acc += w[o * in_n + i] * v[i];
      y[o] = acc;
    }
    return y;
  };
  auto relu_v = [](std::vector<double> v) {
    for (double& e : v) e = std::max(e, 0.0);
    return v;
  };
  double worst = 0;
  for (int64_t b = 0; b < 2; ++b) {
    std::vector<double> h(F);
    for (int64_t ch = 0; ch < Ch; ++ch)
      for (int64_t t = 0; t < T; ++t) {
        double acc = cb[ch];
        for (int64_t k = 0; k < 400; ++k) {
          int64_t i = t * 200 + k - 200;
          if (i >= 0 && i < 4000) acc += cw[ch * 400 + k] * spec[b * 4000 + i];
        }
        h[ch * T + t] = std::max(acc, 0.0);  // ReLU, flatten channel-major
      }
    for (const char* r : {"res1", "res2"}) {
      std::string p(r);
      std::vector<double> a = relu_v(linear(W((p + "_fc1.weight").c_str()), W((p + "_fc1.bias").c_str()), h, F));
      std::vector<double> z = linear(W((p + "_fc2.weight").c_str()), W((p + "_fc2.bias").c_str()), a, F);
      for (int64_t i = 0; i < F; ++i) h[i] = std::max(h[i] + z[i], 0.0);
    }
    std::vector<double> y = linear(W("out.weight"), W("out.bias"), h, S);
    double n = 0;
    for (double v : y) n += v * v;
    n = std::sqrt(n);
    for (int64_t i = 0; i < S; ++i) worst = std::max(worst, std::fabs(y[i] / n - out[b * S + i]));
  }
  CHECK(worst < 1e-12);
}

namespace {

// CE(P, T) = mean_i -sum_j T_ij log_softmax(P_i)_j, in long double.
long double hand_ce(const std::vector<long double>& P, const std::vector<long double>& T, size_t R, size_t Cn) {
  long double total = 0;
  for (size_t i = 0; i < R; ++i) {
    long double m = P[i * Cn];
    for (size_t j = 0; j < Cn; ++j) m = std::max(m, P[i * Cn + j]);
    long double s = 0;
    for (size_t j = 0; j < Cn; ++j) s += std::exp(P[i * Cn + j] - m);
    const long double lse = m + std::log(s);
    for (size_t j = 0; j < Cn; ++j) total -= T[i * Cn + j] * (P[i * Cn + j] - lse);
  }
  return total / static_cast<long double>(R);
}

std::vector<long double> hand_dot(const std::vector<double>& a, const std::vector<double>& b, size_t R, size_t Cn, size_t D) {
  std::vector<long double> out(R * Cn, 0);
  for (size_t i = 0; i < R; ++i)
    for (size_t j = 0; j < Cn; ++j)
      for (size_t d = 0; d < D; ++d) out[i * Cn + j] += static_cast<long double>(a[i * D + d]) * b[j * D + d];
  return out;
}

std::vector<long double> transpose_ld(const std::vector<long double>& m, size_t R, size_t Cn) {
  std::vector<long double> t(R * Cn);
  for (size_t i = 0; i < R; ++i)
    for (size_t j = 0; j < Cn; ++j) t[j * R + i] = m[i * Cn + j];
  return t;
}

// Soft targets by another route: T_ij = 1 / sum_k exp(D_ik - D_ij) (no max subtraction needed: an
// overflowing term just sends T_ij to 0).
std::vector<long double> hand_targets(const std::vector<double>& ppm, double n, double p) {
  const size_t Nc = ppm.size();
  auto D = [&](size_t i, size_t j) {
    return std::pow(10.0L, static_cast<long double>(p)) / (std::fabs(static_cast<long double>(ppm[i]) - ppm[j]) + std::pow(10.0L, -static_cast<long double>(n)));
  };
  std::vector<long double> t(Nc * Nc);
  for (size_t i = 0; i < Nc; ++i)
    for (size_t j = 0; j < Nc; ++j) {
      long double s = 0;
      for (size_t k = 0; k < Nc; ++k) s += std::exp(D(i, k) - D(i, j));
      t[i * Nc + j] = 1 / s;
    }
  return t;
}

}  // namespace

TEST_CASE("soft_target_matrix: stable at n = 5, uniform over equal shifts, matches a second route") {
  std::vector<double> ppm = {10.0, 20.0, 10.0, 35.5, 20.05, 10.0};
  std::vector<double> t = soft_target_matrix(ppm, 5, 1);
  for (double v : t) CHECK(std::isfinite(v));
  // row 0: the three 10.0 carbons share the mass
  CHECK(t[0 * 6 + 0] == doctest::Approx(1.0 / 3));
  CHECK(t[0 * 6 + 2] == doctest::Approx(1.0 / 3));
  CHECK(t[0 * 6 + 5] == doctest::Approx(1.0 / 3));
  CHECK(t[1 * 6 + 1] == doctest::Approx(1.0));
  for (auto [n, p] : {std::pair{5.0, 1.0}, {1.0, 0.0}, {0.0, -1.0}, {2.0, 0.5}}) {
    std::vector<double> a = soft_target_matrix(ppm, n, p);
    std::vector<long double> b = hand_targets(ppm, n, p);
    for (size_t i = 0; i < 6; ++i) {
      double row = 0;
      for (size_t j = 0; j < 6; ++j) {
        row += a[i * 6 + j];
        CHECK(std::fabs(a[i * 6 + j] - static_cast<double>(b[i * 6 + j])) < 1e-12);
      }
      CHECK(row == doctest::Approx(1.0).epsilon(1e-12));
    }
  }
}

TEST_CASE("align_contrastive_loss equals a hand computation; gradient sides detach as configured") {
  const size_t B = 3, Nc = 5, D = 4;
  Rng rng(99);
  auto leaf = [&](size_t r) { return rng.normal({static_cast<int64_t>(r), static_cast<int64_t>(D)}, 0, 1.5, DType::F64).set_requires_grad(true); };
  Tensor es = leaf(B), eg = leaf(B), ep = leaf(Nc), ec = leaf(Nc);
  std::vector<double> ppm = {10.0, 20.0, 10.0, 35.5, 20.05};
  const std::vector<long double> S1 = hand_dot(to_f64(es), to_f64(eg), B, B, D), L1 = hand_dot(to_f64(ep), to_f64(ec), Nc, Nc, D);
  std::vector<long double> I_B(B * B, 0), I_N(Nc * Nc, 0);
  for (size_t i = 0; i < B; ++i) I_B[i * B + i] = 1;
  for (size_t i = 0; i < Nc; ++i) I_N[i * Nc + i] = 1;
  long double l_mol_unscaled = 0;

  struct Case {
    bool soft;
    double n, p, alpha, scale;
  };
  for (Case cs : {Case{true, 5, 1, 0.1, 1}, Case{true, 1, 0, 0.3, 1}, Case{true, 0.5, -0.5, 0.7, 0.3}, Case{false, 5, 1, 0.2, 1},
                  Case{false, 5, 1, 0.6, 2.5}}) {
    std::vector<long double> S = S1, L = L1;
    for (auto& v : S) v *= cs.scale;
    for (auto& v : L) v *= cs.scale;
    const long double l_mol = hand_ce(S, I_B, B, B) + hand_ce(transpose_ld(S, B, B), I_B, B, B);
    if (cs.scale == 1) l_mol_unscaled = l_mol;
    std::vector<long double> T = cs.soft ? hand_targets(ppm, cs.n, cs.p) : I_N;
    const long double l_atom = hand_ce(L, T, Nc, Nc) + hand_ce(transpose_ld(L, Nc, Nc), transpose_ld(T, Nc, Nc), Nc, Nc);
    const double want = static_cast<double>(cs.alpha * l_mol + (1 - cs.alpha) * l_atom);
    std::vector<double> g_graph_both, g_spec_both;
    for (const char* side : {"both", "graph", "spectrum"}) {
      AlignLossOptions o;
      o.alpha = cs.alpha;
      o.soft_n = cs.n;
      o.soft_p = cs.p;
      o.soft_targets = cs.soft;
      o.molecule_gradient = side;
      o.logit_scale = cs.scale;
      for (Tensor* t : {&es, &eg, &ep, &ec}) t->set_grad(Tensor());
      AlignLossParts parts;
      Tensor loss = align_contrastive_loss(es, eg, ep, ec, ppm, o, &parts);
      CHECK_MESSAGE(loss.item() == doctest::Approx(want).epsilon(1e-12), side << " soft " << cs.soft << " n " << cs.n);
      CHECK(parts.molecule == doctest::Approx(static_cast<double>(l_mol)).epsilon(1e-12));
      CHECK(parts.atom == doctest::Approx(static_cast<double>(l_atom)).epsilon(1e-12));
      loss.backward();
      CHECK(ep.grad().defined());
      CHECK(ec.grad().defined());
      const std::string s(side);
      if (s == "both") {
        g_graph_both = to_f64(eg.grad());
        g_spec_both = to_f64(es.grad());
      } else if (s == "graph") {
        CHECK(!es.grad().defined());
        REQUIRE(eg.grad().defined());
        CHECK(max_abs_diff(to_f64(eg.grad()), g_graph_both) < 1e-14);
      } else {
        CHECK(!eg.grad().defined());
        REQUIRE(es.grad().defined());
        CHECK(max_abs_diff(to_f64(es.grad()), g_spec_both) < 1e-14);
      }
    }
  }
  // no atom-level pairs: the molecule term alone
  AlignLossOptions o;
  AlignLossParts parts;
  Tensor none = Tensor::zeros({0, static_cast<int64_t>(D)}, DType::F64);
  Tensor l0 = align_contrastive_loss(es, eg, none, none, {}, o, &parts);
  CHECK(l0.item() == doctest::Approx(static_cast<double>(0.1L * l_mol_unscaled)).epsilon(1e-12));
  CHECK(parts.atom == 0.0);
  CHECK_THROWS_AS(align_contrastive_loss(es, eg, ep, ec, {1.0, 2.0}, o), Error);
}

TEST_CASE("AlignModel: molecule_gradient decides which tower the molecule-level loss trains") {
  AlignBatch b = batch_of(hand_molecules());
  for (const char* enc : {"cnn", "peakset"})
    for (const char* side : {"both", "graph", "spectrum"}) {
      AlignModelConfig c = test_config(enc, false);
      c.molecule_gradient = side;
      AlignModel model(c, 61);
      model.loss(b).backward();
      const std::string s(side);
      for (auto& [name, p] : model.named_parameters()) {
        const bool spectrum_side = starts_with(name, "spectrum_encoder.") || starts_with(name, "spectrum_projection.");
        const bool graph_side = starts_with(name, "graph_pool.") || starts_with(name, "graph_projection.");
        const bool molecule_gin = starts_with(name, "gin.");  // the molecule-level GIN (not shared here)
        bool want = true;
        if (s == "graph" && spectrum_side) want = false;
        if (s == "spectrum" && (graph_side || molecule_gin)) want = false;
        CHECK_MESSAGE(p.grad().defined() == want, std::string(enc) << " " << side << ": " << name);
        if (p.grad().defined()) CHECK_MESSAGE(all_finite(p.grad()), name);
      }
    }
}

TEST_CASE("AlignModel: analytic gradients match finite differences (f64)") {
  AlignBatch b = batch_of({hand_molecules()[0], hand_molecules()[3], random_mol(7, 12)});
  {
    std::vector<int32_t> hyd(static_cast<size_t>(b.num_nodes()));
    for (size_t v = 0; v < hyd.size(); ++v) hyd[v] = static_cast<int32_t>((v * 7) % 4);
    b.node_hydrogens = Tensor::from_vector<int32_t>(hyd, {b.num_nodes()});
  }
  for (const char* enc : {"cnn", "peakset"}) {
    AlignModelConfig c = test_config(enc, std::string(enc) == "peakset");
    if (std::string(enc) == "peakset") {  // the two additions to K-M3AID, on one of the runs
      c.node_hydrogens = true;
      c.peak_basis = 6;
      c.peak_basis_min = 0;
      c.peak_basis_max = 200;
    }
    c.gin_dropout = c.projection_dropout = 0;
    c.soft_n = 1;  // soft targets in their smooth regime
    c.soft_p = 0;
    c.alpha = 0.4;
    c.peak_ppm_scale = 0.05;
    AlignModel model(c, 71, DType::F64);  // training mode: BatchNorm on batch statistics
    auto loss_value = [&] {
      NoGradGuard ng;
      return model.loss(b).item();
    };
    model.loss(b).backward();
    auto st = model.state_dict();
    std::vector<std::string> names = {"gin.atom_emb.weight", "gin.layers.0.bond_type_emb.weight", "gin.layers.1.bond_direction_emb.weight",
                                      "gin.layers.0.fc1.weight", "gin.layers.1.bn.weight", "graph_pool.layers.0.weight",
                                      "graph_projection.fc.weight", "node_projection.ln.weight", "peak_encoder.ppm_fc.weight",
                                      "peak_encoder.multiplicity_emb.weight", "peak_projection.fc2.weight",
                                      "spectrum_projection.fc.weight"};
    if (std::string(enc) == "cnn") {
      for (const char* n : {"spectrum_encoder.conv_weight", "spectrum_encoder.conv_bias", "spectrum_encoder.res1_fc2.weight",
                            "spectrum_encoder.out.weight", "gin_atom.layers.1.fc2.weight"})
        names.push_back(n);
    } else {
      for (const char* n : {"spectrum_encoder.peak.ppm_fc.weight", "spectrum_encoder.fc1.weight", "gin.hydrogen_emb.weight",
                            "peak_encoder.basis_fc.weight", "peak_encoder.basis_mean", "peak_encoder.basis_std",
                            "spectrum_encoder.peak.basis_mean"})
        names.push_back(n);
    }
    int checked = 0;
    for (const std::string& name : names) {
      Tensor p = st.at(name);
      REQUIRE_MESSAGE(p.grad().defined(), name);
      std::vector<double> g = p.grad().to_vector<double>();
      for (size_t e : test::largest_gradient_entries(g, 3)) {
        const double fd = test::central_difference(p.data<double>() + e, loss_value);
        CHECK_MESSAGE(std::fabs(fd - g[e]) <= 1e-6 + 1e-4 * std::fabs(g[e]),
                      std::string(enc) << " " << name << "[" << e << "]: analytic " << g[e] << " vs numeric " << fd);
        ++checked;
      }
    }
    CHECK(checked >= 40);
  }
}

TEST_CASE("AlignModel: a tiny config overfits 4 hand-made molecules") {
  AlignBatch b = batch_of(hand_molecules());
  // Floor of the atom term: isopropanol's two 25.3 ppm methyls are indistinguishable, so each of their rows
  // (and columns) of T is uniform over the pair and costs log 2 at best: 2 * (2 log 2) / 9.
  const double floor = 2 * (2 * std::log(2.0)) / 9;
  for (const char* enc : {"cnn", "peakset"}) {
    AlignModelConfig c = test_config(enc);
    c.gin_dropout = c.projection_dropout = 0;
    c.gin_layers = 3;
    AlignModel model(c, 81);
    AdamW adam(model.named_parameters(), {.lr = 5e-3, .weight_decay = 0.0});
    AlignLossParts first, last;
    for (int step = 0; step < 300; ++step) {
      adam.zero_grad();
      Tensor loss = model.loss(b, step == 0 ? &first : &last);
      loss.backward();
      adam.step();
    }
    MESSAGE(std::string(enc) << ": molecule " << first.molecule << " -> " << last.molecule << ", atom " << first.atom << " -> " << last.atom
                << " (floor " << floor << "), total " << first.total << " -> " << last.total);
    CHECK(last.total < 0.5 * std::log(4.0));
    CHECK(last.molecule < 0.1);
    CHECK(last.atom < floor + 0.1);
  }
}
