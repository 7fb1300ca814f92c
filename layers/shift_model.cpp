// The shift model (see shift_model.h for the architecture and why it is built this way).
#include "layers/shift_model.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/rng.h"
#include "kernels/ops.h"
#include "layers/config_json.h"

namespace larmor {

namespace {

using json = nlohmann::json;

constexpr int32_t kPad = 0, kCls = 1, kSep = 2;  // Uni-Mol special tokens (chem/features.h)
constexpr uint64_t kSitesPerStep = 4096;          // dropout call sites per forward (stream = step * this + site)
const char* const kNucleusNames[kShiftNuclei] = {"1H", "13C", "19F", "31P"};

[[noreturn]] void config_fail(const std::string& what) { throw Error("ShiftModelConfig: " + what); }

// Host-side copies of small index tensors (tokens, masks), whatever device they live on.
std::vector<int32_t> host_i32(const Tensor& t, const char* what) {
  if (t.dtype() == DType::I32) return t.to(Device::cpu()).to_vector<int32_t>();
  if (t.dtype() == DType::I64) {
    std::vector<int64_t> v = t.to(Device::cpu()).to_vector<int64_t>();
    return std::vector<int32_t>(v.begin(), v.end());
  }
  throw Error(std::string("ShiftModel: ") + what + " must be i32 or i64, got " + t.str());
}

template <typename T>
Tensor make_tensor(const std::vector<double>& v, const Shape& s, Device d) {
  std::vector<T> w(v.begin(), v.end());
  return Tensor::from_vector<T>(w, s, d);
}

Tensor host_to(const std::vector<double>& v, const Shape& s, DType dt, Device d) {
  if (dt == DType::F64) return make_tensor<double>(v, s, d);
  Tensor t = make_tensor<float>(v, s, d);
  return dt == DType::F32 ? t : t.to(dt);
}

}  // namespace

// ---- config -----------------------------------------------------------------------------------------------
// small(): sized for a 2-core CPU: ~10 epochs of NMR8K (~8k molecules, batches of 20, ~4000 steps) in about
// half an hour to an hour. One training step (forward, backward, clipping, AdamW; f32, Release, 2 threads)
// on B = 20 molecules of 30..38 atoms with H (N = 40; NMR8K's mean is 34 atoms) measured 0.37 s on this
// 2-core machine when idle and ~0.55 s while other builds ran (tests/test_shift_model.cpp, "small()
// training step time"); 4.57M parameters. Head dim 8 as Uni-Mol. For reference, 4 layers x 128 wide,
// 8 heads, FFN 256, K = 32 took ~0.15 s and 8 x 128, 16 heads, FFN 512, K = 64 ~0.23 s.
ShiftModelConfig ShiftModelConfig::small() {
  ShiftModelConfig c;
  c.layers = 8;
  c.dim = 256;
  c.heads = 32;
  c.ffn = 512;
  c.kernels = 64;
  c.emb_dropout = 0.1;
  c.dropout = 0.1;
  c.attention_dropout = 0.0;
  c.activation_dropout = 0.0;
  c.head_dropout = 0.0;
  return c;
}

ShiftModelConfig ShiftModelConfig::large() {
  ShiftModelConfig c;
  c.layers = 15;
  c.dim = 512;
  c.heads = 64;
  c.ffn = 2048;
  c.kernels = 128;
  c.emb_dropout = 0.1;
  c.dropout = 0.1;
  c.attention_dropout = 0.1;
  c.activation_dropout = 0.0;
  c.head_dropout = 0.0;
  return c;
}

void ShiftModelConfig::validate() const {
  auto positive = [](const char* name, int64_t v) {
    if (v <= 0) config_fail(std::string(name) + " must be positive, got " + std::to_string(v));
  };
  positive("layers", layers);
  positive("dim", dim);
  positive("heads", heads);
  positive("ffn", ffn);
  positive("kernels", kernels);
  positive("vocab_size", vocab_size);
  positive("num_solvents", num_solvents);
  if (dim % heads != 0)
    config_fail("dim " + std::to_string(dim) + " is not divisible by heads " + std::to_string(heads));
  if (vocab_size <= kSep) config_fail("vocab_size must include [PAD], [CLS] and [SEP], got " + std::to_string(vocab_size));
  for (auto [name, p] : {std::pair<const char*, double>{"emb_dropout", emb_dropout},
                         {"dropout", dropout},
                         {"attention_dropout", attention_dropout},
                         {"activation_dropout", activation_dropout},
                         {"head_dropout", head_dropout}})
    if (!(p >= 0 && p < 1)) config_fail(std::string(name) + " must lie in [0, 1), got " + std::to_string(p));
}

std::string ShiftModelConfig::to_json() const {
  json nuc = json::array();
  for (int n = 0; n < kShiftNuclei; ++n)
    if (nuclei[n]) nuc.push_back(kNucleusNames[n]);
  json j = {{"layers", layers},
            {"dim", dim},
            {"heads", heads},
            {"ffn", ffn},
            {"kernels", kernels},
            {"emb_dropout", emb_dropout},
            {"dropout", dropout},
            {"attention_dropout", attention_dropout},
            {"activation_dropout", activation_dropout},
            {"head_dropout", head_dropout},
            {"vocab_size", vocab_size},
            {"num_solvents", num_solvents},
            {"nuclei", nuc},
            {"solvent_conditioning", solvent_conditioning},
            {"atom_features", atom_features},
            {"graph_pairs", graph_pairs}};
  return j.dump();
}

ShiftModelConfig ShiftModelConfig::from_json(const std::string& text) {
  ShiftModelConfig c;
  read_config_json(text, config_fail, [&](const std::string& k, const json& v) {
    if (k == "layers") c.layers = v.get<int64_t>();
    else if (k == "dim") c.dim = v.get<int64_t>();
    else if (k == "heads") c.heads = v.get<int64_t>();
    else if (k == "ffn") c.ffn = v.get<int64_t>();
    else if (k == "kernels") c.kernels = v.get<int64_t>();
    else if (k == "emb_dropout") c.emb_dropout = v.get<double>();
    else if (k == "dropout") c.dropout = v.get<double>();
    else if (k == "attention_dropout") c.attention_dropout = v.get<double>();
    else if (k == "activation_dropout") c.activation_dropout = v.get<double>();
    else if (k == "head_dropout") c.head_dropout = v.get<double>();
    else if (k == "vocab_size") c.vocab_size = v.get<int64_t>();
    else if (k == "num_solvents") c.num_solvents = v.get<int64_t>();
    else if (k == "solvent_conditioning") c.solvent_conditioning = v.get<bool>();
    else if (k == "atom_features") c.atom_features = v.get<bool>();
    else if (k == "graph_pairs") c.graph_pairs = v.get<bool>();
    else if (k == "nuclei") {
      if (!v.is_array()) config_fail("nuclei must be an array of names (\"1H\", \"13C\", \"19F\", \"31P\")");
      c.nuclei.fill(false);
      for (const json& e : v) {
        std::string name = e.get<std::string>();
        int found = -1;
        for (int n = 0; n < kShiftNuclei; ++n)
          if (name == kNucleusNames[n]) found = n;
        if (found < 0) config_fail("unknown nucleus \"" + name + "\" (expected 1H, 13C, 19F or 31P)");
        c.nuclei[found] = true;
      }
    } else {
      return false;
    }
    return true;
  });
  c.validate();
  return c;
}

bool shift_model_decay(const std::string& name, const Tensor& param) {
  if (param.dim() < 2) return false;
  for (const char* table : {"tokens.", "solvent.", "edge_mul.", "edge_bias.", "atom_chem.", "graph_pair."})
    if (name.rfind(table, 0) == 0) return false;
  return true;
}

// ---- layers -------------------------------------------------------------------------------------------------
ShiftModelLayer::ShiftModelLayer(const ShiftModelConfig& c, uint64_t seed, DType dtype) : cfg_(c) {
  ln1_ = register_module("ln1", std::make_shared<LayerNorm>(c.dim, 1e-5, dtype));
  qkv_ = register_module("qkv", std::make_shared<Linear>(c.dim, 3 * c.dim, derive_seed(seed, 0), true, dtype));
  out_ = register_module("out", std::make_shared<Linear>(c.dim, c.dim, derive_seed(seed, 1), true, dtype));
  ln2_ = register_module("ln2", std::make_shared<LayerNorm>(c.dim, 1e-5, dtype));
  fc1_ = register_module("fc1", std::make_shared<Linear>(c.dim, c.ffn, derive_seed(seed, 2), true, dtype));
  fc2_ = register_module("fc2", std::make_shared<Linear>(c.ffn, c.dim, derive_seed(seed, 3), true, dtype));
}

ShiftModel::ShiftModel(const ShiftModelConfig& c, uint64_t seed, DType dtype) : cfg_(c), seed_(seed), dtype_(dtype) {
  c.validate();
  if (dtype != DType::F32 && dtype != DType::F64)
    throw Error(std::string("ShiftModel: dtype must be f32 or f64, got ") + dtype_name(dtype));
  const int64_t V = c.vocab_size, K = c.kernels, H = c.heads, D = c.dim;
  tok_ = register_module("tokens", std::make_shared<Embedding>(V, D, derive_seed(seed, 0), dtype));
  if (c.solvent_conditioning)
    solvent_ = register_module("solvent", std::make_shared<Embedding>(c.num_solvents, D, derive_seed(seed, 1), dtype));
  emb_ln_ = register_module("emb_ln", std::make_shared<LayerNorm>(D, 1e-5, dtype));
  auto zero_table = [&](const char* name, int64_t rows, int64_t width, uint64_t key) {  // starts as a no-op input
    auto e = register_module(name, std::make_shared<Embedding>(rows, width, derive_seed(seed, key), dtype));
    NoGradGuard ng;
    Tensor w = e->weight();
    w.zero_();
    return e;
  };
  if (c.atom_features) atom_chem_ = zero_table("atom_chem", kShiftAtomFeatureRows, D, 7);
  if (c.graph_pairs) graph_pair_ = zero_table("graph_pair", kShiftPairTypes, H, 8);

  // Pair initialisation: per-edge-type affine (mul 1, bias 0), K Gaussians with mean and std ~ U(0, 3)
  // (Uni-Mol's init), then the K -> K -> H "gbf_proj" MLP.
  edge_mul_ = register_module("edge_mul", std::make_shared<Embedding>(V * V, 1, derive_seed(seed, 2), dtype));
  edge_bias_ = register_module("edge_bias", std::make_shared<Embedding>(V * V, 1, derive_seed(seed, 3), dtype));
  {
    NoGradGuard ng;
    Tensor mul_w = edge_mul_->weight(), bias_w = edge_bias_->weight();  // handles share the registered impl
    mul_w.copy_(Tensor::ones({V * V, 1}, dtype));
    bias_w.zero_();
  }
  gbf_mean_ = register_parameter("gbf_mean", rand_uniform({K}, 0.0, 3.0, derive_seed(seed, 4), 0, dtype));
  gbf_std_ = register_parameter("gbf_std", rand_uniform({K}, 0.0, 3.0, derive_seed(seed, 4), 1, dtype));
  gbf_fc1_ = register_module("gbf_fc1", std::make_shared<Linear>(K, K, derive_seed(seed, 5), true, dtype));
  gbf_fc2_ = register_module("gbf_fc2", std::make_shared<Linear>(K, H, derive_seed(seed, 6), true, dtype));

  layers_ = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t l = 0; l < c.layers; ++l)
    layers_->push_back(std::make_shared<ShiftModelLayer>(c, derive_seed(seed, 100 + static_cast<uint64_t>(l)), dtype));
  final_ln_ = register_module("final_ln", std::make_shared<LayerNorm>(D, 1e-5, dtype));

  for (int n = 0; n < kShiftNuclei; ++n) {
    if (!c.nuclei[n]) continue;
    std::string base = std::string("head_") + kNucleusNames[n];
    uint64_t s = derive_seed(seed, 10 + static_cast<uint64_t>(n));
    head_fc1_[n] = register_module(base + "_fc1", std::make_shared<Linear>(D, D, derive_seed(s, 0), true, dtype));
    head_fc2_[n] = register_module(base + "_fc2", std::make_shared<Linear>(D, 1, derive_seed(s, 1), true, dtype));
  }

  coord_fc1_ = register_module("coord_fc1", std::make_shared<Linear>(H, H, derive_seed(seed, 20), true, dtype));
  coord_fc2_ = register_module("coord_fc2", std::make_shared<Linear>(H, 1, derive_seed(seed, 21), true, dtype));
  dist_fc1_ = register_module("dist_fc1", std::make_shared<Linear>(H, H, derive_seed(seed, 22), true, dtype));
  dist_ln_ = register_module("dist_ln", std::make_shared<LayerNorm>(H, 1e-5, dtype));
  dist_fc2_ = register_module("dist_fc2", std::make_shared<Linear>(H, 1, derive_seed(seed, 23), true, dtype));
  mlm_fc_ = register_module("mlm_fc", std::make_shared<Linear>(D, D, derive_seed(seed, 24), true, dtype));
  mlm_ln_ = register_module("mlm_ln", std::make_shared<LayerNorm>(D, 1e-5, dtype));
  mlm_bias_ = register_parameter("mlm_bias", Tensor::zeros({V}, dtype));
}

// Masks and index data derived from the (B, N) tokens and key mask, on the host, then moved once.
struct ShiftModel::HostMasks {
  Tensor key;        // (B, N) model dtype: 1 for [CLS], atoms and [SEP]
  Tensor atom_pair;  // (B, N, N) atom_i * atom_j (atom: a real atom, not [CLS]/[SEP]/padding)
  Tensor edge;       // (B, N, N) i32 edge type tok_i * V + tok_j
  Tensor inv_real;   // (B, 1, 1) 1 / number of real tokens (0 for an empty row)
  Tensor key_i32;    // (B, N) i32 key mask for the attention op

  static HostMasks build(const ShiftBatch& b, const ShiftModelConfig& c, DType dt, Device dev, bool want_edge) {
    const int64_t B = b.batch_size(), N = b.seq_len(), V = c.vocab_size;
    std::vector<int32_t> tok = host_i32(b.tokens, "tokens");
    std::vector<int32_t> km = host_i32(b.key_mask, "key_mask");
    std::vector<double> key(B * N), atom(B * N), ap(B * N * N), inv(B);
    std::vector<int32_t> edge(want_edge ? B * N * N : 0);
    for (int64_t i = 0; i < B * N; ++i) {
      if (tok[i] < 0 || tok[i] >= V)
        throw Error("ShiftModel: token " + std::to_string(tok[i]) + " at flat position " + std::to_string(i) +
                    " is outside the vocabulary [0, " + std::to_string(V) + ")");
      key[i] = km[i] != 0 ? 1.0 : 0.0;
      atom[i] = (km[i] != 0 && tok[i] != kPad && tok[i] != kCls && tok[i] != kSep) ? 1.0 : 0.0;
    }
    for (int64_t bb = 0; bb < B; ++bb) {
      double n = 0;
      for (int64_t i = 0; i < N; ++i) n += key[bb * N + i];
      inv[bb] = n > 0 ? 1.0 / n : 0.0;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
          int64_t p = (bb * N + i) * N + j;
          ap[p] = atom[bb * N + i] * atom[bb * N + j];
          if (want_edge) edge[p] = static_cast<int32_t>(tok[bb * N + i] * V + tok[bb * N + j]);
        }
    }
    HostMasks m;
    m.key = host_to(key, {B, N}, dt, dev);
    m.atom_pair = host_to(ap, {B, N, N}, dt, dev);
    m.inv_real = host_to(inv, {B, 1, 1}, dt, dev);
    std::vector<int32_t> k01(km.size());
    for (size_t i = 0; i < km.size(); ++i) k01[i] = km[i] != 0 ? 1 : 0;
    m.key_i32 = Tensor::from_vector<int32_t>(k01, {B, N}, dev);
    if (want_edge) m.edge = Tensor::from_vector<int32_t>(edge, {B, N, N}, dev);
    return m;
  }
};

namespace {
// The inputs every use needs; with a config, also those its switches ask for (solvent, chemistry inputs).
void check_batch(const ShiftBatch& b, const ShiftModelConfig* uses = nullptr) {
  if (!b.tokens.defined() || b.tokens.dim() != 2) throw Error("ShiftModel: tokens must be (B, N)");
  const int64_t B = b.batch_size(), N = b.seq_len();
  auto shape_is = [](const Tensor& t, const Shape& s) { return t.defined() && t.shape() == s; };
  if (!shape_is(b.coords, {B, N, 3}))
    throw Error("ShiftModel: coords must be " + shape_str({B, N, 3}) + ", got " + (b.coords.defined() ? b.coords.str() : "undefined"));
  if (!shape_is(b.key_mask, {B, N}))
    throw Error("ShiftModel: key_mask must be " + shape_str({B, N}) + ", got " +
                (b.key_mask.defined() ? b.key_mask.str() : "undefined"));
  if (N < 1) throw Error("ShiftModel: empty sequences (N = 0)");
  if (!uses) return;
  const ShiftModelConfig& c = *uses;
  if (c.solvent_conditioning && !shape_is(b.solvent, {B}))
    throw Error("ShiftModel: solvent must be " + shape_str({B}) + ", got " + (b.solvent.defined() ? b.solvent.str() : "undefined"));
  auto ids_in = [](const Tensor& t, const char* what, int64_t rows) {
    if (t.dtype() != DType::I32) throw Error(std::string("ShiftModel: ") + what + " must be i32");
    for (int32_t v : t.to_vector<int32_t>())
      if (v < 0 || v >= rows)
        throw Error(std::string("ShiftModel: ") + what + " value " + std::to_string(v) + " is outside [0, " +
                    std::to_string(rows) + ")");
  };
  if (c.atom_features) {
    if (!shape_is(b.atom_features, {B, N, kShiftAtomFeatures}))
      throw Error("ShiftModel: the model uses atom features: atom_features must be " + shape_str({B, N, kShiftAtomFeatures}) +
                  ", got " + (b.atom_features.defined() ? b.atom_features.str() : "undefined"));
    ids_in(b.atom_features, "atom_features", kShiftAtomFeatureRows);
  }
  if (c.graph_pairs) {
    if (!shape_is(b.pair_types, {B, N, N}))
      throw Error("ShiftModel: the model uses graph pairs: pair_types must be " + shape_str({B, N, N}) + ", got " +
                  (b.pair_types.defined() ? b.pair_types.str() : "undefined"));
    ids_in(b.pair_types, "pair_types", kShiftPairTypes);
  }
}
}  // namespace

Tensor ShiftModel::dropout_site(const Tensor& x, double p, int site) const {
  if (!is_training() || p == 0) return x;
  return dropout(x, p, true, seed_, step_ * kSitesPerStep + static_cast<uint64_t>(site));
}

Tensor ShiftModel::attention(const ShiftModelLayer& l, const Tensor& x, Tensor* bias, const Tensor& key_mask,
                             const Tensor& full_mask, int site) const {
  const int64_t B = x.size(0), N = x.size(1), D = cfg_.dim, H = cfg_.heads, dh = D / H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  Tensor qkv = permute(reshape(l.qkv_->forward(x), {B, N, 3, H, dh}), {2, 0, 3, 1, 4});  // (3, B, H, N, dh)
  auto part = [&](int64_t i) { return reshape(slice(qkv, 0, i, i + 1), {B, H, N, dh}); };
  Tensor q = part(0), k = part(1), v = part(2);  // (B, H, N, dh)
  Tensor out;
  if (is_training() && cfg_.attention_dropout > 0) {
    Tensor logits = add(mul_scalar(matmul(q, k, false, true), scale), *bias);  // (B, H, N, N)
    Tensor probs = dropout_site(softmax(logits, full_mask), cfg_.attention_dropout, site);
    out = matmul(probs, v);  // (B, H, N, dh)
    *bias = logits;
  } else {
    PairAttentionOut a = pair_bias_attention(q, k, v, *bias, key_mask, scale, /*keep_probs=*/false);
    out = a.out;
    *bias = a.logits;
  }
  return reshape(permute(out, {0, 2, 1, 3}), {B, N, D});  // (B, N, D)
}

ShiftOutput ShiftModel::forward(const ShiftBatch& batch, bool with_delta_pair) {
  check_batch(batch, &cfg_);
  const int64_t B = batch.batch_size(), N = batch.seq_len(), D = cfg_.dim, H = cfg_.heads;
  const Device dev = tok_->weight().device();
  HostMasks m = HostMasks::build(batch, cfg_, dtype_, dev, true);
  Tensor tokens = batch.tokens.to(dev);
  bool composed = is_training() && cfg_.attention_dropout > 0;
  Tensor full_mask;  // (B, H, N, N) i32 key mask for the composed softmax
  if (composed) {
    std::vector<int32_t> km = host_i32(batch.key_mask, "key_mask"), fm(static_cast<size_t>(B * H * N * N));
    for (int64_t bb = 0; bb < B; ++bb)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < N; ++j) fm[((bb * H + h) * N + i) * N + j] = km[bb * N + j] != 0 ? 1 : 0;
    full_mask = Tensor::from_vector<int32_t>(fm, {B, H, N, N}, dev);
  }

  // Pair initialisation. Distances are data: detached coordinates, zero for every pair that is not
  // (atom, atom), as Uni-Mol's 0.0 padding of [CLS]/[SEP] rows.
  Tensor c = batch.coords.detach().to(dev);
  if (c.dtype() != dtype_) c = c.to(dtype_);
  Tensor dist;  // (B, N, N)
  {
    NoGradGuard ng;
    Tensor diff = sub(reshape(c, {B, N, 1, 3}), reshape(c, {B, 1, N, 3}));  // (B, N, N, 3)
    dist = mul(sqrt(sum(square(diff), {3})), m.atom_pair);                  // (B, N, N)
  }
  Tensor x_aff = add(mul(reshape(edge_mul_->forward(m.edge), {B, N, N}), dist),
                     reshape(edge_bias_->forward(m.edge), {B, N, N}));          // (B, N, N)
  Tensor g = gaussian_basis(x_aff, gbf_mean_, gbf_std_);                        // (B, N, N, K)
  Tensor b0 = gbf_fc2_->forward(gelu(gbf_fc1_->forward(g)));                   // (B, N, N, H)
  if (cfg_.graph_pairs) b0 = add(b0, graph_pair_->forward(batch.pair_types.to(dev)));  // (B, N, N, H)
  Tensor bias0 = permute(b0, {0, 3, 1, 2});                                     // (B, H, N, N)

  // Token embedding (+ solvent on [CLS], position 0), LayerNorm, dropout, padding rows zeroed.
  Tensor h = tok_->forward(tokens);  // (B, N, D)
  if (cfg_.atom_features) h = add(h, sum(atom_chem_->forward(batch.atom_features.to(dev)), {2}));  // (B, N, F, D) -> (B, N, D)
  if (cfg_.solvent_conditioning) {
    std::vector<int32_t> sv = host_i32(batch.solvent, "solvent");
    for (int64_t bb = 0; bb < B; ++bb)
      if (sv[bb] < 0 || sv[bb] >= cfg_.num_solvents)
        throw Error("ShiftModel: solvent " + std::to_string(sv[bb]) + " of row " + std::to_string(bb) +
                    " is outside [0, " + std::to_string(cfg_.num_solvents) + ")");
    Tensor s = reshape(solvent_->forward(batch.solvent.to(dev)), {B, 1, D});  // (B, 1, D)
    std::vector<double> onehot(static_cast<size_t>(N), 0.0);
    onehot[0] = 1.0;
    h = add(h, mul(s, host_to(onehot, {1, N, 1}, dtype_, dev)));  // (B, N, D)
  }
  Tensor key3 = reshape(m.key, {B, N, 1});
  Tensor x = mul(dropout_site(emb_ln_->forward(h), cfg_.emb_dropout, 0), key3);  // (B, N, D)

  Tensor bias = bias0;
  for (size_t li = 0; li < layers_->size(); ++li) {
    const ShiftModelLayer& l = *layers_->at<ShiftModelLayer>(li);
    const int site = 1 + 4 * static_cast<int>(li);
    Tensor a = attention(l, l.ln1_->forward(x), &bias, m.key_i32, full_mask, site);
    x = add(x, dropout_site(l.out_->forward(a), cfg_.dropout, site + 1));
    Tensor f = dropout_site(gelu(l.fc1_->forward(l.ln2_->forward(x))), cfg_.activation_dropout, site + 2);
    x = add(x, dropout_site(l.fc2_->forward(f), cfg_.dropout, site + 3));
  }
  ShiftOutput out;
  out.hidden = final_ln_->forward(x);  // (B, N, D)
  out.pair = bias;                     // (B, H, N, N)
  if (with_delta_pair)
    out.delta_pair = mul(mul(permute(sub(bias, bias0), {0, 2, 3, 1}), reshape(m.key, {B, N, 1, 1})),
                         reshape(m.key, {B, 1, N, 1}));  // (B, N, N, H), zero unless key_i and key_j
  out.has_head = cfg_.nuclei;

  std::vector<Tensor> cols;
  const int head_site = 1 + 4 * static_cast<int>(layers_->size());
  for (int n = 0; n < kShiftNuclei; ++n) {
    if (!head_fc1_[n]) {
      cols.push_back(Tensor::zeros({B, N, 1}, dtype_, dev));
      continue;
    }
    Tensor t = dropout_site(out.hidden, cfg_.head_dropout, head_site + 2 * n);
    t = dropout_site(tanh(head_fc1_[n]->forward(t)), cfg_.head_dropout, head_site + 2 * n + 1);
    cols.push_back(head_fc2_[n]->forward(t));  // (B, N, 1)
  }
  out.shifts = concat(cols, 2);  // (B, N, 4)
  if (is_training()) ++step_;
  return out;
}

Tensor ShiftModel::coordinate_head(const ShiftOutput& out, const ShiftBatch& batch) const {
  check_batch(batch);
  const int64_t B = batch.batch_size(), N = batch.seq_len();
  if (!out.delta_pair.defined() || out.delta_pair.shape() != Shape{B, N, N, cfg_.heads})
    throw Error("ShiftModel::coordinate_head: delta_pair must be " + shape_str({B, N, N, cfg_.heads}) + " for this batch");
  const Device dev = out.delta_pair.device();
  HostMasks m = HostMasks::build(batch, cfg_, dtype_, dev, false);
  Tensor c = batch.coords.to(dev);
  if (c.dtype() != dtype_) c = c.to(dtype_);
  Tensor w = reshape(coord_fc2_->forward(gelu(coord_fc1_->forward(out.delta_pair))), {B, N, N});  // (B, N, N)
  w = mul(mul(w, m.atom_pair), m.inv_real);  // (B, N, N) f_ij / n on (atom, atom) pairs
  // sum_j w_ij (x_j - x_i) = (w @ x)_i - x_i * sum_j w_ij
  Tensor update = sub(matmul(w, c), mul(c, sum(w, {2}, true)));  // (B, N, 3)
  return add(c, update);
}

Tensor ShiftModel::distance_head(const ShiftOutput& out) const {
  if (!out.delta_pair.defined() || out.delta_pair.dim() != 4 || out.delta_pair.size(3) != cfg_.heads)
    throw Error("ShiftModel::distance_head: delta_pair must be (B, N, N, " + std::to_string(cfg_.heads) + ")");
  const int64_t B = out.delta_pair.size(0), N = out.delta_pair.size(1);
  Tensor y = dist_fc2_->forward(dist_ln_->forward(gelu(dist_fc1_->forward(out.delta_pair))));  // (B, N, N, 1)
  y = reshape(y, {B, N, N});
  return mul_scalar(add(y, transpose(y, 1, 2)), 0.5);  // (B, N, N)
}

Tensor ShiftModel::token_head(const ShiftOutput& out) const {
  if (!out.hidden.defined() || out.hidden.dim() != 3 || out.hidden.size(2) != cfg_.dim)
    throw Error("ShiftModel::token_head: hidden must be (B, N, " + std::to_string(cfg_.dim) + ")");
  Tensor t = mlm_ln_->forward(gelu(mlm_fc_->forward(out.hidden)));  // (B, N, D)
  return add(matmul(t, tok_->weight(), false, true), mlm_bias_);     // (B, N, V)
}

}  // namespace larmor
