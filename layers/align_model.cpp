// The alignment model (see align_model.h for the architecture and why it is built this way).
#include "layers/align_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <nlohmann/json.hpp>

#include "engine/rng.h"
#include "layers/config_json.h"

namespace larmor {

namespace {

using json = nlohmann::json;

constexpr uint64_t kStreamsPerStep = 4096;  // dropout streams per encode call (stream = step * this + site)
// Sites inside one encode call.
constexpr uint64_t kSiteGin = 0, kSiteGinAtom = 64, kSiteGraphHead = 200, kSiteNodeHead = 201,
                   kSiteSpectrumHead = 202, kSitePeakHead = 203;
constexpr int32_t kSelfLoopBondType = 4;
constexpr int64_t kCnnStride = 200;  // CReSS: kernel 400 = 2 * stride, padding 200 = stride

[[noreturn]] void config_fail(const std::string& what) { throw Error("AlignModelConfig: " + what); }
[[noreturn]] void model_fail(const std::string& what) { throw Error("AlignModel: " + what); }

template <typename T>
std::vector<T> host(const Tensor& t) {
  return t.to(Device::cpu()).to_vector<T>();
}

std::vector<double> host_f64(const Tensor& t) {
  return host<double>(t.dtype() == DType::F64 ? t : t.to(DType::F64));
}

Tensor host_to(const std::vector<double>& v, const Shape& s, DType dt, Device d) {
  if (dt == DType::F64) return Tensor::from_vector<double>(v, s, d);
  std::vector<float> w(v.begin(), v.end());
  Tensor t = Tensor::from_vector<float>(w, s, d);
  return dt == DType::F32 ? t : t.to(dt);
}

Tensor as_dtype(const Tensor& t, DType dt, Device d) {
  Tensor x = t.to(d);
  return x.dtype() == dt ? x : x.to(dt);
}

// torch.nn.init.xavier_uniform_ on an embedding table (V, D): U(+-sqrt(6 / (V + D))).
void xavier_init(const std::shared_ptr<Embedding>& e, int64_t rows, int64_t dim, uint64_t seed, DType dtype) {
  NoGradGuard ng;
  const double bound = std::sqrt(6.0 / static_cast<double>(rows + dim));
  Tensor w = e->weight();  // shares the registered impl
  w.copy_(rand_uniform({rows, dim}, -bound, bound, seed, 7, dtype));
}

Tensor drop(const Tensor& x, double p, bool training, uint64_t seed, uint64_t stream) {
  if (!training || p == 0) return x;
  return dropout(x, p, true, seed, stream);
}

}  // namespace

// ---- config -----------------------------------------------------------------------------------------------
AlignModelConfig AlignModelConfig::tiny() {
  AlignModelConfig c;
  c.gin_layers = 2;
  c.gin_dim = 8;
  c.gin_hidden = 16;
  c.graph_pool_hidden = 8;
  c.peak_dim = 8;
  c.cnn_channels = 2;
  c.spectrum_dim = 12;
  c.projection_dim = 8;
  c.logit_scale = 1.0;  // 8-wide embeddings: raw dot products are already O(1)
  return c;
}

int64_t AlignModelConfig::cnn_flat_dim() const { return cnn_channels * (kAlignSpectrumBins / kCnnStride + 1); }

void AlignModelConfig::validate() const {
  for (auto [name, v] : {std::pair<const char*, int64_t>{"gin_layers", gin_layers},
                         {"gin_dim", gin_dim},
                         {"gin_hidden", gin_hidden},
                         {"num_atom_types", num_atom_types},
                         {"num_chirality_tags", num_chirality_tags},
                         {"num_hybridizations", num_hybridizations},
                         {"graph_pool_hidden", graph_pool_hidden},
                         {"peak_dim", peak_dim},
                         {"cnn_channels", cnn_channels},
                         {"spectrum_dim", spectrum_dim},
                         {"projection_dim", projection_dim}})
    if (v <= 0) config_fail(std::string(name) + " must be positive, got " + std::to_string(v));
  if (num_atom_types <= kAlignCarbonType)
    config_fail("num_atom_types must include carbon (type 5), got " + std::to_string(num_atom_types));
  for (auto [name, p] : {std::pair<const char*, double>{"gin_dropout", gin_dropout}, {"projection_dropout", projection_dropout}})
    if (!(p >= 0 && p < 1)) config_fail(std::string(name) + " must lie in [0, 1), got " + std::to_string(p));
  if (peak_basis < 0 || peak_basis > 4096) config_fail("peak_basis must lie in [0, 4096], got " + std::to_string(peak_basis));
  if (peak_basis > 0 && !(std::isfinite(peak_basis_min) && std::isfinite(peak_basis_max) && peak_basis_max > peak_basis_min))
    config_fail("peak_basis_min < peak_basis_max must both be finite, got " + std::to_string(peak_basis_min) + ", " +
                std::to_string(peak_basis_max));
  if (!(std::isfinite(peak_ppm_scale) && peak_ppm_scale > 0))
    config_fail("peak_ppm_scale must be finite and positive, got " + std::to_string(peak_ppm_scale));
  if (spectrum_encoder != "cnn" && spectrum_encoder != "peakset")
    config_fail("spectrum_encoder must be \"cnn\" or \"peakset\", got \"" + spectrum_encoder + "\"");
  if (molecule_gradient != "both" && molecule_gradient != "graph" && molecule_gradient != "spectrum")
    config_fail("molecule_gradient must be \"both\", \"graph\" or \"spectrum\", got \"" + molecule_gradient + "\"");
  if (!(std::isfinite(logit_scale) && logit_scale > 0))
    config_fail("logit_scale must be finite and positive, got " + std::to_string(logit_scale));
  if (!(alpha >= 0 && alpha <= 1)) config_fail("alpha must lie in [0, 1], got " + std::to_string(alpha));
  // 10^p / 10^-n must stay finite in double: |n|, |p| well inside 300.
  for (auto [name, v] : {std::pair<const char*, double>{"soft_n", soft_n}, {"soft_p", soft_p}})
    if (!(std::isfinite(v) && std::fabs(v) <= 100)) config_fail(std::string(name) + " must be finite with |value| <= 100, got " + std::to_string(v));
}

std::string AlignModelConfig::to_json() const {
  json j = {{"gin_layers", gin_layers},
            {"gin_dim", gin_dim},
            {"gin_hidden", gin_hidden},
            {"gin_dropout", gin_dropout},
            {"num_atom_types", num_atom_types},
            {"num_chirality_tags", num_chirality_tags},
            {"num_hybridizations", num_hybridizations},
            {"graph_pool_hidden", graph_pool_hidden},
            {"shared_graph_encoder", shared_graph_encoder},
            {"node_hydrogens", node_hydrogens},
            {"peak_dim", peak_dim},
            {"peak_ppm_scale", peak_ppm_scale},
            {"peak_basis", peak_basis},
            {"peak_basis_min", peak_basis_min},
            {"peak_basis_max", peak_basis_max},
            {"spectrum_encoder", spectrum_encoder},
            {"cnn_channels", cnn_channels},
            {"spectrum_dim", spectrum_dim},
            {"projection_dim", projection_dim},
            {"projection_dropout", projection_dropout},
            {"alpha", alpha},
            {"soft_n", soft_n},
            {"soft_p", soft_p},
            {"soft_targets", soft_targets},
            {"molecule_gradient", molecule_gradient},
            {"logit_scale", logit_scale}};
  return j.dump();
}

AlignModelConfig AlignModelConfig::from_json(const std::string& text) {
  AlignModelConfig c;
  read_config_json(text, config_fail, [&](const std::string& key, const json& v) {
    if (key == "gin_layers") c.gin_layers = v.get<int64_t>();
    else if (key == "gin_dim") c.gin_dim = v.get<int64_t>();
    else if (key == "gin_hidden") c.gin_hidden = v.get<int64_t>();
    else if (key == "gin_dropout") c.gin_dropout = v.get<double>();
    else if (key == "num_atom_types") c.num_atom_types = v.get<int64_t>();
    else if (key == "num_chirality_tags") c.num_chirality_tags = v.get<int64_t>();
    else if (key == "num_hybridizations") c.num_hybridizations = v.get<int64_t>();
    else if (key == "graph_pool_hidden") c.graph_pool_hidden = v.get<int64_t>();
    else if (key == "shared_graph_encoder") c.shared_graph_encoder = v.get<bool>();
    else if (key == "peak_dim") c.peak_dim = v.get<int64_t>();
    else if (key == "peak_ppm_scale") c.peak_ppm_scale = v.get<double>();
    else if (key == "node_hydrogens") c.node_hydrogens = v.get<bool>();
    else if (key == "peak_basis") c.peak_basis = v.get<int64_t>();
    else if (key == "peak_basis_min") c.peak_basis_min = v.get<double>();
    else if (key == "peak_basis_max") c.peak_basis_max = v.get<double>();
    else if (key == "spectrum_encoder") c.spectrum_encoder = v.get<std::string>();
    else if (key == "cnn_channels") c.cnn_channels = v.get<int64_t>();
    else if (key == "spectrum_dim") c.spectrum_dim = v.get<int64_t>();
    else if (key == "projection_dim") c.projection_dim = v.get<int64_t>();
    else if (key == "projection_dropout") c.projection_dropout = v.get<double>();
    else if (key == "alpha") c.alpha = v.get<double>();
    else if (key == "soft_n") c.soft_n = v.get<double>();
    else if (key == "soft_p") c.soft_p = v.get<double>();
    else if (key == "soft_targets") c.soft_targets = v.get<bool>();
    else if (key == "molecule_gradient") c.molecule_gradient = v.get<std::string>();
    else if (key == "logit_scale") c.logit_scale = v.get<double>();
    else return false;
    return true;
  });
  c.validate();
  return c;
}

AlignLossOptions AlignLossOptions::from(const AlignModelConfig& c) {
  AlignLossOptions o;
  o.alpha = c.alpha;
  o.soft_n = c.soft_n;
  o.soft_p = c.soft_p;
  o.soft_targets = c.soft_targets;
  o.molecule_gradient = c.molecule_gradient;
  o.logit_scale = c.logit_scale;
  return o;
}

bool align_model_decay(const std::string& name, const Tensor& param) {
  if (param.dim() < 2) return false;
  return name.find("_emb.") == std::string::npos;
}

// ---- functions ----------------------------------------------------------------------------------------------
Tensor conv1d_two_chunk(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride) {
  if (stride <= 0) throw Error("conv1d_two_chunk: stride must be positive, got " + std::to_string(stride));
  if (!x.defined() || x.dim() != 2 || x.size(1) % stride != 0)
    throw Error("conv1d_two_chunk: x must be (B, L) with L a multiple of the stride " + std::to_string(stride) + ", got " +
                (x.defined() ? x.str() : "undefined"));
  const int64_t B = x.size(0), L = x.size(1), K = L / stride;
  if (!weight.defined() || weight.dim() != 3 || weight.size(1) != 1 || weight.size(2) != 2 * stride)
    throw Error("conv1d_two_chunk: weight must be (C, 1, " + std::to_string(2 * stride) + "), got " +
                (weight.defined() ? weight.str() : "undefined"));
  const int64_t C = weight.size(0);
  if (!bias.defined() || bias.shape() != Shape{C})
    throw Error("conv1d_two_chunk: bias must be (" + std::to_string(C) + "), got " + (bias.defined() ? bias.str() : "undefined"));
  Tensor pad = Tensor::zeros({B, stride}, x.dtype(), x.device());
  Tensor chunks = reshape(concat({pad, x, pad}, 1), {B, K + 2, stride});                            // (B, K+2, s)
  Tensor windows = concat({slice(chunks, 1, 0, K + 1), slice(chunks, 1, 1, K + 2)}, 2);              // (B, K+1, 2s)
  Tensor y = add(matmul(windows, reshape(weight, {C, 2 * stride}), false, true), bias);             // (B, K+1, C)
  return permute(y, {0, 2, 1});                                                                      // (B, C, K+1)
}

std::vector<double> soft_target_matrix(const std::vector<double>& ppm, double n, double p) {
  const size_t N = ppm.size();
  const double num = std::pow(10.0, p), floor = std::pow(10.0, -n);
  std::vector<double> t(N * N);
  for (size_t i = 0; i < N; ++i) {
    double* row = &t[i * N];
    double m = -std::numeric_limits<double>::infinity();
    for (size_t j = 0; j < N; ++j) {
      row[j] = num / (std::fabs(ppm[i] - ppm[j]) + floor);
      m = std::max(m, row[j]);
    }
    double s = 0;
    for (size_t j = 0; j < N; ++j) s += (row[j] = std::exp(row[j] - m));
    for (size_t j = 0; j < N; ++j) row[j] /= s;
  }
  return t;
}

Tensor align_contrastive_loss(const Tensor& spectrum, const Tensor& graph, const Tensor& peak, const Tensor& carbon,
                              const std::vector<double>& carbon_ppm, const AlignLossOptions& o, AlignLossParts* parts) {
  auto fail = [](const std::string& m) { throw Error("align_contrastive_loss: " + m); };
  if (!spectrum.defined() || !graph.defined() || spectrum.dim() != 2 || spectrum.shape() != graph.shape())
    fail("spectrum and graph embeddings must both be (B, D)");
  const int64_t Nc = static_cast<int64_t>(carbon_ppm.size());
  if (!peak.defined() || !carbon.defined() || peak.shape() != Shape{Nc, spectrum.size(1)} || carbon.shape() != peak.shape())
    fail("peak and carbon embeddings must both be " + shape_str({Nc, spectrum.size(1)}) + " (one row per carbon_ppm)");
  if (o.molecule_gradient != "both" && o.molecule_gradient != "graph" && o.molecule_gradient != "spectrum")
    fail("molecule_gradient must be \"both\", \"graph\" or \"spectrum\", got \"" + o.molecule_gradient + "\"");

  Tensor es = o.molecule_gradient == "graph" ? spectrum.detach() : spectrum;
  Tensor eg = o.molecule_gradient == "spectrum" ? graph.detach() : graph;
  if (!(std::isfinite(o.logit_scale) && o.logit_scale > 0)) fail("logit_scale must be finite and positive");
  Tensor l_mol = info_nce(matmul(es, eg, false, true), Tensor(), o.logit_scale);  // S (B, B), identity targets
  Tensor l_atom;
  if (Nc > 0) {
    Tensor logits = matmul(peak, carbon, false, true);  // L (Nc, Nc)
    Tensor targets;
    if (o.soft_targets)
      targets = host_to(soft_target_matrix(carbon_ppm, o.soft_n, o.soft_p), {Nc, Nc}, logits.dtype(), logits.device());
    l_atom = info_nce(logits, targets, o.logit_scale);
  }
  Tensor total;
  if (o.alpha != 0) total = mul_scalar(l_mol, o.alpha);
  if (l_atom.defined() && o.alpha != 1) {
    Tensor a = mul_scalar(l_atom, 1 - o.alpha);
    total = total.defined() ? add(total, a) : a;
  }
  if (!total.defined()) total = mul_scalar(l_mol, 0.0);  // no atom pairs and alpha = 0: an exact 0
  if (parts) {
    parts->molecule = l_mol.item();
    parts->atom = l_atom.defined() ? l_atom.item() : 0.0;
    parts->total = total.item();
    parts->molecules = spectrum.size(0);
    parts->carbons = Nc;
  }
  return total;
}

// ---- building blocks -------------------------------------------------------------------------------------------
GinGraph GinGraph::build(const AlignBatch& batch, Device device) {
  const int64_t V = batch.num_nodes(), E = batch.num_edges();
  const std::vector<int32_t> feat = host<int32_t>(batch.node_features);
  const std::vector<int32_t> ei = host<int32_t>(batch.edge_index), ef = host<int32_t>(batch.edge_features);
  std::vector<int32_t> col[3];
  for (int k = 0; k < 3; ++k) col[k].resize(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v)
    for (int k = 0; k < 3; ++k) col[k][v] = feat[v * kAlignNodeFeatureColumns + k];
  // edges, then one self loop per node
  std::vector<int32_t> src(ei.begin(), ei.begin() + E), dst(ei.begin() + E, ei.end()), type(E + V), dir(E + V, 0);
  for (int64_t e = 0; e < E; ++e) {
    type[e] = ef[e * 2];
    dir[e] = ef[e * 2 + 1];
  }
  for (int64_t v = 0; v < V; ++v) {
    src.push_back(static_cast<int32_t>(v));
    dst.push_back(static_cast<int32_t>(v));
    type[E + v] = kSelfLoopBondType;
  }
  Tensor perm;
  Graph g = build_graph(Tensor::from_vector<int32_t>(src, {E + V}), Tensor::from_vector<int32_t>(dst, {E + V}), V, &perm);
  const std::vector<int32_t> order = perm.to_vector<int32_t>();
  std::vector<int32_t> type_sorted(order.size()), dir_sorted(order.size());
  for (size_t k = 0; k < order.size(); ++k) {
    type_sorted[k] = type[order[k]];
    dir_sorted[k] = dir[order[k]];
  }
  GinGraph out;
  out.atom_type = Tensor::from_vector<int32_t>(col[0], {V}, device);
  out.chirality = Tensor::from_vector<int32_t>(col[1], {V}, device);
  out.hybridization = Tensor::from_vector<int32_t>(col[2], {V}, device);
  if (batch.node_hydrogens.defined()) out.hydrogens = batch.node_hydrogens.to(device);
  out.graph = g.to(device);
  out.bond_type = Tensor::from_vector<int32_t>(type_sorted, {E + V}, device);
  out.bond_direction = Tensor::from_vector<int32_t>(dir_sorted, {E + V}, device);
  return out;
}

GinLayer::GinLayer(const AlignModelConfig& c, uint64_t seed, DType dtype) {
  const int64_t D = c.gin_dim;
  bond_type_emb_ = register_module("bond_type_emb", std::make_shared<Embedding>(kSelfLoopBondType + 1, D, derive_seed(seed, 0), dtype));
  bond_direction_emb_ = register_module("bond_direction_emb", std::make_shared<Embedding>(3, D, derive_seed(seed, 1), dtype));
  xavier_init(bond_type_emb_, kSelfLoopBondType + 1, D, derive_seed(seed, 0), dtype);
  xavier_init(bond_direction_emb_, 3, D, derive_seed(seed, 1), dtype);
  fc1_ = register_module("fc1", std::make_shared<Linear>(D, c.gin_hidden, derive_seed(seed, 2), true, dtype));
  fc2_ = register_module("fc2", std::make_shared<Linear>(c.gin_hidden, D, derive_seed(seed, 3), true, dtype));
  bn_ = register_module("bn", std::make_shared<BatchNorm1d>(D, 0.1, 1e-5, dtype));
}

GinEncoder::GinEncoder(const AlignModelConfig& c, uint64_t seed, DType dtype) : cfg_(c), seed_(seed) {
  const int64_t D = c.gin_dim;
  atom_emb_ = register_module("atom_emb", std::make_shared<Embedding>(c.num_atom_types, D, derive_seed(seed, 0), dtype));
  chirality_emb_ = register_module("chirality_emb", std::make_shared<Embedding>(c.num_chirality_tags, D, derive_seed(seed, 1), dtype));
  hybridization_emb_ =
      register_module("hybridization_emb", std::make_shared<Embedding>(c.num_hybridizations, D, derive_seed(seed, 2), dtype));
  xavier_init(atom_emb_, c.num_atom_types, D, derive_seed(seed, 0), dtype);
  xavier_init(chirality_emb_, c.num_chirality_tags, D, derive_seed(seed, 1), dtype);
  if (c.node_hydrogens) {
    hydrogen_emb_ = register_module("hydrogen_emb", std::make_shared<Embedding>(kAlignMaxHydrogens + 1, D, derive_seed(seed, 3), dtype));
    xavier_init(hydrogen_emb_, kAlignMaxHydrogens + 1, D, derive_seed(seed, 3), dtype);
  }
  layers_ = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t l = 0; l < c.gin_layers; ++l)
    layers_->push_back(std::make_shared<GinLayer>(c, derive_seed(seed, 100 + static_cast<uint64_t>(l)), dtype));
}

Tensor GinEncoder::forward(const GinGraph& g, uint64_t stream_base) const {
  Tensor h = add(add(atom_emb_->forward(g.atom_type), chirality_emb_->forward(g.chirality)),
                 hybridization_emb_->forward(g.hybridization));  // (V, D)
  if (hydrogen_emb_) {
    if (!g.hydrogens.defined()) throw Error("AlignModel: node_hydrogens is on but the batch has no node_hydrogens");
    h = add(h, hydrogen_emb_->forward(g.hydrogens));
  }
  const size_t L = layers_->size();
  for (size_t l = 0; l < L; ++l) {
    const GinLayer& layer = *layers_->at<GinLayer>(l);
    Tensor edge = add(layer.bond_type_emb_->forward(g.bond_type), layer.bond_direction_emb_->forward(g.bond_direction));  // (E', D)
    Tensor m = message_passing(h, edge, g.graph);                                  // (V, D)
    h = layer.bn_->forward(layer.fc2_->forward(relu(layer.fc1_->forward(m))));    // (V, D)
    if (l + 1 < L) h = relu(h);
    h = drop(h, cfg_.gin_dropout, is_training(), seed_, stream_base + l);
  }
  return h;
}

PeakEncoder::PeakEncoder(const AlignModelConfig& c, uint64_t seed, DType dtype) : ppm_scale_(c.peak_ppm_scale) {
  const int64_t D = c.peak_dim;
  ppm_fc_ = register_module("ppm_fc", std::make_shared<Linear>(1, D, derive_seed(seed, 0), true, dtype));
  multiplicity_emb_ =
      register_module("multiplicity_emb", std::make_shared<Embedding>(kAlignNumMultiplicities, D, derive_seed(seed, 1), dtype));
  fc1_ = register_module("fc1", std::make_shared<Linear>(2 * D, D, derive_seed(seed, 2), true, dtype));
  fc2_ = register_module("fc2", std::make_shared<Linear>(D, D, derive_seed(seed, 3), true, dtype));
  if (c.peak_basis > 0) {
    const int64_t K = c.peak_basis;
    const double spacing = (c.peak_basis_max - c.peak_basis_min) / static_cast<double>(std::max<int64_t>(K - 1, 1));
    std::vector<double> mean(static_cast<size_t>(K)), std(static_cast<size_t>(K), spacing);
    for (int64_t k = 0; k < K; ++k) mean[k] = c.peak_basis_min + spacing * static_cast<double>(k);
    basis_mean_ = register_parameter("basis_mean", host_to(mean, {K}, dtype, Device::cpu()));
    basis_std_ = register_parameter("basis_std", host_to(std, {K}, dtype, Device::cpu()));
    basis_scale_ = std::sqrt(2 * std::numbers::pi) * spacing;
    basis_fc_ = register_module("basis_fc", std::make_shared<Linear>(K, D, derive_seed(seed, 4), true, dtype));
  }
}

Tensor PeakEncoder::forward(const Tensor& ppm, const Tensor& multiplicity) const {
  Shape s = ppm.shape();
  s.push_back(1);
  Tensor x = reshape(ppm, s);                              // (..., 1)
  if (ppm_scale_ != 1.0) x = mul_scalar(x, ppm_scale_);
  Tensor p = ppm_fc_->forward(x);                          // (..., D)
  if (basis_fc_) {
    // the basis reads the raw ppm; its peak value is 1 / (sqrt(2 pi) spacing), so scale it to O(1) first
    p = add(p, basis_fc_->forward(mul_scalar(gaussian_basis(ppm, basis_mean_, basis_std_), basis_scale_)));  // (..., D)
  }
  Tensor h = concat({p, multiplicity_emb_->forward(multiplicity)}, -1);  // (..., 2D)
  return fc2_->forward(relu(fc1_->forward(h)));            // (..., D)
}

CressCnnEncoder::CressCnnEncoder(const AlignModelConfig& c, uint64_t seed, DType dtype) {
  const int64_t C = c.cnn_channels, F = c.cnn_flat_dim();
  // torch Conv1d's default init: U(+-1/sqrt(fan_in)), fan_in = in_channels * kernel = 400
  const double bound = 1.0 / std::sqrt(static_cast<double>(2 * kCnnStride));
  conv_weight_ = register_parameter("conv_weight", rand_uniform({C, 1, 2 * kCnnStride}, -bound, bound, derive_seed(seed, 0), 0, dtype));
  conv_bias_ = register_parameter("conv_bias", rand_uniform({C}, -bound, bound, derive_seed(seed, 0), 1, dtype));
  res1_fc1_ = register_module("res1_fc1", std::make_shared<Linear>(F, F, derive_seed(seed, 1), true, dtype));
  res1_fc2_ = register_module("res1_fc2", std::make_shared<Linear>(F, F, derive_seed(seed, 2), true, dtype));
  res2_fc1_ = register_module("res2_fc1", std::make_shared<Linear>(F, F, derive_seed(seed, 3), true, dtype));
  res2_fc2_ = register_module("res2_fc2", std::make_shared<Linear>(F, F, derive_seed(seed, 4), true, dtype));
  out_ = register_module("out", std::make_shared<Linear>(F, c.spectrum_dim, derive_seed(seed, 5), true, dtype));
}

Tensor CressCnnEncoder::forward(const Tensor& spectrum) const {
  const int64_t B = spectrum.size(0);
  Tensor h = reshape(relu(conv1d_two_chunk(spectrum, conv_weight_, conv_bias_, kCnnStride)), {B, -1});  // (B, C*21)
  h = relu(add(h, res1_fc2_->forward(relu(res1_fc1_->forward(h)))));  // ResMLP, ReLU
  h = relu(add(h, res2_fc2_->forward(relu(res2_fc1_->forward(h)))));  // ResMLP, ReLU
  Tensor y = out_->forward(h);                                          // (B, spectrum_dim)
  // F.normalize: y / max(|y|, 1e-12), written as y / sqrt(|y|^2 + 1e-24) (smooth, same away from 0)
  return div(y, sqrt(add_scalar(sum(square(y), {1}, true), 1e-24)));
}

PeakSetEncoder::PeakSetEncoder(const AlignModelConfig& c, uint64_t seed, DType dtype) {
  peak_ = register_module("peak", std::make_shared<PeakEncoder>(c, derive_seed(seed, 0), dtype));
  fc1_ = register_module("fc1", std::make_shared<Linear>(2 * c.peak_dim, c.spectrum_dim, derive_seed(seed, 1), true, dtype));
  fc2_ = register_module("fc2", std::make_shared<Linear>(c.spectrum_dim, c.spectrum_dim, derive_seed(seed, 2), true, dtype));
}

Tensor PeakSetEncoder::forward(const Tensor& ppm, const Tensor& multiplicity, const Tensor& mask) const {
  const int64_t B = ppm.size(0), P = ppm.size(1);
  const DType dt = fc1_->weight().dtype();
  const Device dev = fc1_->weight().device();
  const std::vector<int32_t> m = host<int32_t>(mask);
  std::vector<double> keep(static_cast<size_t>(B * P)), inv_count(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    double n = 0;
    for (int64_t k = 0; k < P; ++k) n += (keep[b * P + k] = m[b * P + k] != 0 ? 1.0 : 0.0);
    inv_count[b] = 1.0 / std::max(n, 1.0);
  }
  Tensor h = mul(peak_->forward(ppm, multiplicity), host_to(keep, {B, P, 1}, dt, dev));  // (B, P, d), padding rows 0
  Tensor total = sum(h, {1});                                                              // (B, d)
  Tensor avg = mul(total, host_to(inv_count, {B, 1}, dt, dev));                            // (B, d)
  return fc2_->forward(relu(fc1_->forward(concat({total, avg}, 1))));                      // (B, spectrum_dim)
}

ProjectionHead::ProjectionHead(int64_t in, int64_t out, double dropout_p, uint64_t seed, DType dtype)
    : dropout_(dropout_p), seed_(derive_seed(seed, 99)) {
  fc_ = register_module("fc", std::make_shared<Linear>(in, out, derive_seed(seed, 0), true, dtype));
  fc2_ = register_module("fc2", std::make_shared<Linear>(out, out, derive_seed(seed, 1), true, dtype));
  ln_ = register_module("ln", std::make_shared<LayerNorm>(out, 1e-5, dtype));
}

Tensor ProjectionHead::forward(const Tensor& x, uint64_t stream) const {
  Tensor p = fc_->forward(x);                                                             // (..., out)
  Tensor t = drop(fc2_->forward(gelu(p)), dropout_, is_training(), seed_, stream);       // (..., out)
  return ln_->forward(add(p, t));
}

// ---- the model ----------------------------------------------------------------------------------------------------
AlignModel::AlignModel(const AlignModelConfig& c, uint64_t seed, DType dtype) : cfg_(c), seed_(seed), dtype_(dtype) {
  c.validate();
  if (dtype != DType::F32 && dtype != DType::F64)
    model_fail(std::string("dtype must be f32 or f64, got ") + dtype_name(dtype));
  gin_ = register_module("gin", std::make_shared<GinEncoder>(c, derive_seed(seed, 0), dtype));
  if (!c.shared_graph_encoder) gin_atom_ = register_module("gin_atom", std::make_shared<GinEncoder>(c, derive_seed(seed, 1), dtype));
  graph_pool_ = register_module("graph_pool", std::make_shared<MLP>(std::vector<int64_t>{c.gin_dim, c.graph_pool_hidden, c.gin_dim},
                                                                    Activation::Relu, derive_seed(seed, 2), 0.0, dtype));
  peak_encoder_ = register_module("peak_encoder", std::make_shared<PeakEncoder>(c, derive_seed(seed, 3), dtype));
  if (c.spectrum_encoder == "cnn")
    cnn_ = register_module("spectrum_encoder", std::make_shared<CressCnnEncoder>(c, derive_seed(seed, 4), dtype));
  else
    peakset_ = register_module("spectrum_encoder", std::make_shared<PeakSetEncoder>(c, derive_seed(seed, 4), dtype));
  const int64_t Dp = c.projection_dim;
  const double pd = c.projection_dropout;
  spectrum_projection_ = register_module("spectrum_projection", std::make_shared<ProjectionHead>(c.spectrum_dim, Dp, pd, derive_seed(seed, 5), dtype));
  peak_projection_ = register_module("peak_projection", std::make_shared<ProjectionHead>(c.peak_dim, Dp, pd, derive_seed(seed, 6), dtype));
  graph_projection_ = register_module("graph_projection", std::make_shared<ProjectionHead>(c.gin_dim, Dp, pd, derive_seed(seed, 7), dtype));
  node_projection_ = register_module("node_projection", std::make_shared<ProjectionHead>(c.gin_dim, Dp, pd, derive_seed(seed, 8), dtype));
}

uint64_t AlignModel::next_stream_base() {
  const uint64_t base = step_ * kStreamsPerStep;
  if (is_training()) ++step_;
  return base;
}

void AlignModel::check_ranges(const AlignBatch& batch) const {
  const std::vector<int32_t> feat = host<int32_t>(batch.node_features);
  const int64_t limits[3] = {cfg_.num_atom_types, cfg_.num_chirality_tags, cfg_.num_hybridizations};
  const char* names[3] = {"atom type", "chirality tag", "hybridisation"};
  for (size_t i = 0; i < feat.size(); ++i) {
    const int k = static_cast<int>(i % kAlignNodeFeatureColumns);
    if (feat[i] >= limits[k])
      model_fail("node_features[" + std::to_string(i / kAlignNodeFeatureColumns) + ", " + std::to_string(k) + "] = " +
                 std::to_string(feat[i]) + " is outside the " + names[k] + " table [0, " + std::to_string(limits[k]) + ")");
  }
}

AlignGraphEmbeddings AlignModel::encode_graph(const AlignBatch& batch) {
  batch.validate();
  check_ranges(batch);
  const Device dev = gin_->parameters().front().device();
  const uint64_t base = next_stream_base();
  const GinGraph g = GinGraph::build(batch, dev);
  Tensor h = gin_->forward(g, base + kSiteGin);  // (V, gin_dim)
  AlignGraphEmbeddings out;
  Tensor pooled = graph_pool_->forward(segment_sum(h, batch.node_offsets.to(dev)));  // (B, gin_dim)
  out.molecule = graph_projection_->forward(pooled, base + kSiteGraphHead);         // (B, Dp)
  const int64_t Nc = batch.num_carbons();
  if (Nc == 0) {
    out.carbon = Tensor::zeros({0, cfg_.projection_dim}, dtype_, dev);
  } else {
    Tensor hc = gin_atom_ ? gin_atom_->forward(g, base + kSiteGinAtom) : h;
    out.carbon = node_projection_->forward(index_select(hc, batch.carbon_nodes.to(dev)), base + kSiteNodeHead);  // (Nc, Dp)
  }
  return out;
}

Tensor AlignModel::encode_spectrum(const AlignBatch& batch) {
  batch.validate();
  const Device dev = gin_->parameters().front().device();
  const uint64_t base = next_stream_base();
  Tensor x;
  if (cnn_) {
    if (!batch.spectrum.defined()) model_fail("the \"cnn\" spectrum encoder needs batch.spectrum (B, 4000)");
    x = cnn_->forward(as_dtype(batch.spectrum, dtype_, dev));
  } else {
    if (!batch.peak_ppm.defined())
      model_fail("the \"peakset\" spectrum encoder needs batch.peak_ppm / peak_multiplicity / peak_mask (B, P)");
    x = peakset_->forward(as_dtype(batch.peak_ppm, dtype_, dev), batch.peak_multiplicity.to(dev), batch.peak_mask);
  }
  return spectrum_projection_->forward(x, base + kSiteSpectrumHead);  // (B, Dp)
}

Tensor AlignModel::encode_peak_list(const Tensor& ppm, const Tensor& multiplicity) {
  if (!ppm.defined() || ppm.dim() != 1 || !is_floating(ppm.dtype()))
    model_fail("peak ppm must be a floating (N) tensor, got " + std::string(ppm.defined() ? ppm.str() : "undefined"));
  if (!multiplicity.defined() || multiplicity.dtype() != DType::I32 || multiplicity.shape() != ppm.shape())
    model_fail("peak multiplicity must be i32 " + shape_str(ppm.shape()) + ", got " +
               (multiplicity.defined() ? multiplicity.str() : "undefined"));
  const std::vector<int32_t> m = host<int32_t>(multiplicity);
  for (size_t i = 0; i < m.size(); ++i)
    if (m[i] < 0 || m[i] >= kAlignNumMultiplicities)
      model_fail("peak multiplicity[" + std::to_string(i) + "] = " + std::to_string(m[i]) + " is not a class 0..4");
  const Device dev = gin_->parameters().front().device();
  const uint64_t base = next_stream_base();
  if (ppm.numel() == 0) return Tensor::zeros({0, cfg_.projection_dim}, dtype_, dev);
  Tensor h = peak_encoder_->forward(as_dtype(ppm, dtype_, dev), multiplicity.to(dev));  // (N, peak_dim)
  return peak_projection_->forward(h, base + kSitePeakHead);                            // (N, Dp)
}

Tensor AlignModel::encode_peaks(const AlignBatch& batch) {
  batch.validate();
  if (!batch.has_atom_pairs()) model_fail("encode_peaks needs batch.carbon_ppm and batch.carbon_multiplicity");
  return encode_peak_list(batch.carbon_ppm, batch.carbon_multiplicity);
}

Tensor AlignModel::loss(const AlignBatch& batch, AlignLossParts* parts) {
  if (!batch.has_atom_pairs()) model_fail("loss needs batch.carbon_ppm and batch.carbon_multiplicity (Nc may be 0)");
  AlignGraphEmbeddings g = encode_graph(batch);
  Tensor s = encode_spectrum(batch);
  Tensor p = encode_peaks(batch);
  return align_contrastive_loss(s, g.molecule, p, g.carbon, host_f64(batch.carbon_ppm), AlignLossOptions::from(cfg_), parts);
}

}  // namespace larmor
