// The spectrum-structure alignment model (K-M3AID, docs/MODELS.md §2): a GIN graph encoder, a peak encoder,
// a spectrum encoder (the CReSS CNN trained from scratch, or a permutation-invariant peak-set encoder), four
// projection heads into one shared space, and the two-level contrastive loss.
//
//   graph:     h0 = Emb_atom(x0) + Emb_chir(x1) + Emb_hyb(x2)                                      (V, 128)
//              per layer l: m = message_passing(h, Emb_bond_l(t) + Emb_dir_l(d)) over edges + self loops (t = 4)
//                           h = Dropout(ReLU?(BatchNorm(Lin(ReLU(Lin(m))))))   (no ReLU on the last layer)
//              molecule = graph_projection(MLP(segment_sum(h_L)))                                  (B, 512)
//              carbons  = node_projection(h_L[carbon_nodes])                                       (Nc, 512)
//              (+ Emb_H(attached H) in h0 when node_hydrogens is on; not in K-M3AID)
//   peaks:     peak_projection(MLP(Lin_1->128(ppm) ‖ Emb_mult(class)))                            (Nc, 512)
//              (+ Lin_K->128(gaussian_basis(ppm)) in the ppm term when peak_basis = K > 0; not in K-M3AID)
//   spectrum:  "cnn":     CReSS: conv(1->32, k 400, s 200, p 200) ReLU flatten(672) ResMLP ReLU ResMLP ReLU
//                         Lin(672->768) L2-normalise
//              "peakset": per-peak encoder (its own weights), masked [sum ‖ mean] pooling, MLP -> 768
//              then spectrum_projection                                                            (B, 512)
//   heads:     p = Lin(in->512); y = LayerNorm(p + Dropout(Lin(GELU(p))))
//   loss:      alpha * [CE(S, I) + CE(S^T, I)] + (1 - alpha) * [CE(L, T) + CE(L^T, T^T)]
//              S = c E_spec E_graph^T (B, B); L = c E_peak E_carbon^T (Nc, Nc) over ALL carbons of the batch
//              (c = logit_scale: 1/sqrt(512) by default, 1 in K-M3AID);
//              T = row-softmax(10^p / (|δi - δj| + 10^-n)) (soft) or I (hard). Both through the info_nce op.
//
// Why it is built this way:
//   - No conv op exists, and none is needed: with kernel = 2 * stride and padding = stride, window t of the
//     padded input covers chunks t and t+1 of `stride` samples. So pad, reshape to (B, L/s + 2, s), concat
//     the chunk sequence with itself shifted by one along the feature axis -> (B, L/s + 1, 2s) (the unfolded
//     windows, no copy of a 400-wide im2col per position beyond that), and one matmul with the (C, 2s)
//     kernel gives (B, L/s + 1, C); permute to (B, C, L/s + 1) and flatten channel-major as torch does.
//     conv1d_two_chunk() is that function, public so tests can check it against direct loops.
//   - Batches are one disjoint graph, so molecules never interact through message passing or pooling; they
//     do through BatchNorm's batch statistics in training mode (as in the reference), never in eval mode.
//   - Self loops and the destination-sorted CSR are built on the host per forward (cheap next to the
//     encoders) and the per-edge embedding rows follow build_graph's edge order.
//   - The soft targets are data (no gradient): computed in double on the host with the row maximum
//     subtracted before exp (with n = 5 the logits reach 10^6, so a naive softmax overflows), then cast.
//   - "molecule_gradient" detaches one side of S: "graph" freezes the whole spectrum tower with respect to
//     the molecule-level loss (as K-M3AID's frozen, pretrained CReSS encoder; from scratch the spectrum
//     tower then stays at its initialisation), "spectrum" the graph pooling MLP + graph head.
//   - Dropout is the stateless Philox op with (seed, step * sites + site) streams, as the shift model: each
//     training-mode encode_* call advances the step, so a run is reproducible and resumable.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "layers/align_batch.h"
#include "layers/basic.h"
#include "layers/module.h"

namespace larmor {

struct AlignModelConfig {
  // graph encoder (GIN, Hu et al. featurisation)
  int64_t gin_layers = 5;
  int64_t gin_dim = 128;
  int64_t gin_hidden = 256;       // hidden width of each layer's MLP
  double gin_dropout = 0.2;
  int64_t num_atom_types = 120;   // node_features column 0 table
  int64_t num_chirality_tags = 3;
  int64_t num_hybridizations = 6;
  int64_t graph_pool_hidden = 128;  // molecule MLP: gin_dim -> hidden -> ReLU -> gin_dim
  bool shared_graph_encoder = true; // false: a second GIN for the carbon (atom-level) embeddings
  // Not in K-M3AID (Hu et al.'s featurisation has no hydrogen count): h0 += Emb_H(attached H, 0..4). The
  // 13C multiplicity of a peak IS the attached-H count of its carbon, so this hands the graph side the
  // feature the peak side reads directly. Needs batch.node_hydrogens.
  bool node_hydrogens = false;

  // peak encoder: Linear(1 -> peak_dim)(ppm * peak_ppm_scale) ‖ Emb(5, peak_dim)(class) -> MLP 2d -> d -> d
  int64_t peak_dim = 128;
  double peak_ppm_scale = 1.0;  // K-M3AID feeds raw, unnormalised ppm (scale 1)
  // Not in K-M3AID: K > 0 adds a learnable Gaussian basis of the ppm (K means spread evenly over
  // [peak_basis_min, peak_basis_max], widths the spacing; gaussian_basis op) through Linear(K -> peak_dim)
  // to the linear ppm term. One Linear(1 -> d) of the raw ppm followed by a ReLU MLP resolves shifts
  // poorly; the basis gives each ~spacing-wide ppm window its own direction. 0 = K-M3AID's encoder.
  int64_t peak_basis = 0;
  double peak_basis_min = -20, peak_basis_max = 240;

  // spectrum encoder
  std::string spectrum_encoder = "cnn";  // "cnn" (CReSS) | "peakset"
  int64_t cnn_channels = 32;             // flatten width = channels * 21
  int64_t spectrum_dim = 768;            // encoder output (CReSS: 768)

  // projection heads
  int64_t projection_dim = 512;
  double projection_dropout = 0.1;

  // loss
  double alpha = 0.1;            // weight of the molecule-level term
  double soft_n = 5;             // T = softmax(10^p / (|Δδ| + 10^-n))
  double soft_p = 1;
  bool soft_targets = true;      // false: identity targets at the atom level
  std::string molecule_gradient = "both";  // "both" | "graph" | "spectrum": which side of S gets gradient
  // Fixed multiplier of both logit matrices (S and L) inside the InfoNCE. K-M3AID uses raw dot products
  // (1.0; its config.temperature is never applied); with LayerNorm-ed 512-wide embeddings those logits are
  // O(100) at initialisation and training from scratch diverged here (NMRShiftDB2, B = 128: loss 73 -> 147
  // in 2 steps, gradient norm ~3000), while 1/sqrt(512) starts at chance (11.3) and falls. So the default is
  // 1/sqrt(512); set 1.0 for the authors' behaviour.
  double logit_scale = 0.044194173824159216;  // 1 / sqrt(512)

  static AlignModelConfig tiny();  // a small config for tests and smoke runs
  void validate() const;           // throws larmor::Error naming the bad field
  int64_t cnn_flat_dim() const;    // channels * (4000 / 200 + 1)

  // JSON for checkpoint metadata: every field. from_json accepts a subset (missing fields keep their
  // defaults), rejects unknown keys and validates.
  std::string to_json() const;
  static AlignModelConfig from_json(const std::string& text);
  bool operator==(const AlignModelConfig&) const = default;
};

// Conv1d with kernel 2s, stride s, padding s, as two-chunk unfolding + matmul (see the file comment).
// x (B, L) with L % s == 0, weight (C, 1, 2s), bias (C) -> (B, C, L/s + 1).
Tensor conv1d_two_chunk(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride);

// The knowledge-guided soft targets T (Nc, Nc) = row-softmax(10^p / (|δi - δj| + 10^-n)), in double, stably.
std::vector<double> soft_target_matrix(const std::vector<double>& ppm, double n, double p);

struct AlignLossOptions {
  double alpha = 0.1;
  double soft_n = 5, soft_p = 1;
  bool soft_targets = true;
  std::string molecule_gradient = "both";
  double logit_scale = 1.0;
  static AlignLossOptions from(const AlignModelConfig& c);
};

struct AlignLossParts {
  double total = 0;
  double molecule = 0;    // CE(S, I) + CE(S^T, I)
  double atom = 0;        // CE(L, T) + CE(L^T, T^T); 0 when the batch has no atom-level pairs
  int64_t molecules = 0;  // B
  int64_t carbons = 0;    // Nc
};

// The two-level loss on embeddings: spectrum, graph (B, D); peak, carbon (Nc, D); carbon_ppm (Nc) the
// δ behind the targets. A term whose weight is 0, and the atom term when Nc = 0, is left out of the graph.
Tensor align_contrastive_loss(const Tensor& spectrum, const Tensor& graph, const Tensor& peak, const Tensor& carbon,
                              const std::vector<double>& carbon_ppm, const AlignLossOptions& options,
                              AlignLossParts* parts = nullptr);

// Weight-decay choice for AdamW: matrices decay except embedding tables (names with "_emb."); 1-D tensors
// (biases, norm scales) never.
bool align_model_decay(const std::string& name, const Tensor& param);

// ---- building blocks -------------------------------------------------------------------------------------
class GinLayer : public Module {
 public:
  GinLayer(const AlignModelConfig& c, uint64_t seed, DType dtype);

 private:
  friend class GinEncoder;
  std::shared_ptr<Embedding> bond_type_emb_, bond_direction_emb_;  // (5, D): types 0..3 + self loop 4; (3, D)
  std::shared_ptr<Linear> fc1_, fc2_;
  std::shared_ptr<BatchNorm1d> bn_;
};

// The GIN's index inputs on the model's device: node feature columns, and the edges plus one self loop per
// node (bond type 4, direction 0) sorted by destination, with their type/direction in the sorted order.
struct GinGraph {
  Tensor atom_type, chirality, hybridization;  // (V) i32
  Tensor hydrogens;                            // (V) i32, undefined when the batch has no node_hydrogens
  Graph graph;                                 // E' = E + V edges
  Tensor bond_type, bond_direction;            // (E') i32, in graph edge order
  static GinGraph build(const AlignBatch& batch, Device device);
};

// Node embeddings (V, gin_dim) of the disjoint batch graph.
class GinEncoder : public Module {
 public:
  GinEncoder(const AlignModelConfig& c, uint64_t seed, DType dtype);
  // Dropout in training mode; stream_base is the dropout stream of layer 0 (layer l uses stream_base + l).
  Tensor forward(const GinGraph& g, uint64_t stream_base) const;

 private:
  AlignModelConfig cfg_;
  uint64_t seed_;
  std::shared_ptr<Embedding> atom_emb_, chirality_emb_, hybridization_emb_, hydrogen_emb_;  // hydrogen_emb_ optional
  std::shared_ptr<ModuleList> layers_;
};

class PeakEncoder : public Module {
 public:
  PeakEncoder(const AlignModelConfig& c, uint64_t seed, DType dtype);
  Tensor forward(const Tensor& ppm, const Tensor& multiplicity) const;  // (...) f, (...) i32 -> (..., peak_dim)

 private:
  double ppm_scale_;
  std::shared_ptr<Linear> ppm_fc_, fc1_, fc2_;
  std::shared_ptr<Linear> basis_fc_;  // peak_basis > 0 only
  Tensor basis_mean_, basis_std_;     // (K)
  double basis_scale_ = 1;            // sqrt(2 pi) * initial spacing: the basis' peak value becomes 1
  std::shared_ptr<Embedding> multiplicity_emb_;
};

class CressCnnEncoder : public Module {
 public:
  CressCnnEncoder(const AlignModelConfig& c, uint64_t seed, DType dtype);
  Tensor forward(const Tensor& spectrum) const;  // (B, 4000) -> (B, spectrum_dim), unit rows

 private:
  Tensor conv_weight_, conv_bias_;  // (C, 1, 400), (C)
  std::shared_ptr<Linear> res1_fc1_, res1_fc2_, res2_fc1_, res2_fc2_, out_;
};

class PeakSetEncoder : public Module {
 public:
  PeakSetEncoder(const AlignModelConfig& c, uint64_t seed, DType dtype);
  // ppm (B, P), multiplicity (B, P) i32, mask (B, P) i32 -> (B, spectrum_dim)
  Tensor forward(const Tensor& ppm, const Tensor& multiplicity, const Tensor& mask) const;

 private:
  std::shared_ptr<PeakEncoder> peak_;
  std::shared_ptr<Linear> fc1_, fc2_;
};

class ProjectionHead : public Module {
 public:
  ProjectionHead(int64_t in, int64_t out, double dropout, uint64_t seed, DType dtype);
  Tensor forward(const Tensor& x, uint64_t stream) const;  // (..., in) -> (..., out); dropout in training mode

 private:
  double dropout_;
  uint64_t seed_;
  std::shared_ptr<Linear> fc_, fc2_;
  std::shared_ptr<LayerNorm> ln_;
};

struct AlignGraphEmbeddings {
  Tensor molecule;  // (B, projection_dim)
  Tensor carbon;    // (Nc, projection_dim)
};

class AlignModel : public Module {
 public:
  AlignModel(const AlignModelConfig& c, uint64_t seed, DType dtype = DType::F32);

  AlignGraphEmbeddings encode_graph(const AlignBatch& batch);
  Tensor encode_spectrum(const AlignBatch& batch);  // (B, projection_dim), from the encoder's input form
  Tensor encode_peaks(const AlignBatch& batch);     // carbon_ppm / carbon_multiplicity -> (Nc, projection_dim)
  // Any peak list: ppm (N) f32/f64, multiplicity (N) i32 -> (N, projection_dim) (assignment at inference).
  Tensor encode_peak_list(const Tensor& ppm, const Tensor& multiplicity);
  // alpha * L_molecule + (1 - alpha) * L_atom (scalar, model dtype). Needs carbon_ppm / carbon_multiplicity.
  Tensor loss(const AlignBatch& batch, AlignLossParts* parts = nullptr);

  const AlignModelConfig& config() const { return cfg_; }
  DType dtype() const { return dtype_; }
  uint64_t seed() const { return seed_; }
  uint64_t dropout_step() const { return step_; }   // training-mode encode calls so far
  void set_dropout_step(uint64_t s) { step_ = s; }  // to resume a run exactly

 private:
  uint64_t next_stream_base();
  void check_ranges(const AlignBatch& batch) const;

  AlignModelConfig cfg_;
  uint64_t seed_;
  DType dtype_;
  uint64_t step_ = 0;

  std::shared_ptr<GinEncoder> gin_, gin_atom_;  // gin_atom_ null when shared
  std::shared_ptr<MLP> graph_pool_;
  std::shared_ptr<PeakEncoder> peak_encoder_;
  std::shared_ptr<CressCnnEncoder> cnn_;       // one of cnn_ / peakset_
  std::shared_ptr<PeakSetEncoder> peakset_;
  std::shared_ptr<ProjectionHead> spectrum_projection_, peak_projection_, graph_projection_, node_projection_;
};

}  // namespace larmor
