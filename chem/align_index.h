// Spectrum -> structure retrieval with the alignment model (`larmor index`, `larmor retrieve`): a library of
// molecule embeddings (the model's graph tower, computed once), a 13C peak list embedded by the model's
// spectrum tower, and a ranking of the library by dot product. No Open Babel here: the index format, the
// search, building an index from a prepared dataset, and the query embedding. Building from a SMILES/SDF
// file is chem/ob_align_index.h.
//
// The index file is safetensors (layers/safetensors.h), so it opens in Python too:
//   embeddings  (M, D) F32 (or F16 storage: half the size; loads back as F32)   molecule embeddings, D = 512
//   mass        (M) F64 monoisotopic mass (most abundant isotope of each element, neutral molecule as
//                       drawn, no electron-mass correction); NaN when an element has no table entry
//   __metadata__: format "larmor-align-index", version "1", molecules, dim, model_fingerprint, model_path,
//                 model_config, source, and four JSON arrays of M strings: ids, names, smiles, formulas.
//
// Why it is built this way:
//   - The strings live in the header as JSON arrays: readable with any safetensors reader, and at ~100 bytes
//     a molecule the reference implementation's 100 MB header limit allows ~10^6 molecules; saving refuses
//     a larger library with a message instead of writing a file nobody can load.
//   - The model's identity is a fingerprint of its config and every weight/buffer value (FNV-1a 64 over the
//     config JSON and the state dict as f32, in name order), not its path: a retrained or re-exported (f16)
//     model has other embeddings, and embeddings from one model are meaningless to another's spectrum tower.
//     Retrieving with a model whose fingerprint differs is refused (check_align_index_model).
//   - Scores follow evaluate_align (chem/align_training.h): raw dot products of the spectrum embedding with
//     each molecule embedding rank the library; the reported score is logit_scale * dot (the model's logits,
//     as in its InfoNCE), and the probability is the softmax of those logits over the molecules that pass the
//     filters. Ties keep library order (lower index first), so a ranking is deterministic.
//   - Search is one (M x D) x (D) matrix-vector product in float with 16 independent accumulators per row
//     (vectorises without reassociation flags) and a partial sort of the candidates: O(M D + M log k).
//   - The query is embedded exactly as training saw spectra (chem/align_data.h): the distinct (ppm,
//     multiplicity class) pairs, ascending; a peak without multiplicity is class 4 (unknown). The CReSS grid
//     covers -50..350 ppm, so a shift outside it is an error rather than silently clamped into an edge bin.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "chem/assignment.h"
#include "chem/dataset.h"
#include "chem/nmr.h"
#include "layers/align_batch.h"
#include "layers/align_model.h"
#include "layers/safetensors.h"

namespace larmor::chem {

inline constexpr const char* kAlignIndexFormat = "larmor-align-index";
inline constexpr const char* kAlignIndexVersion = "1";

struct AlignIndexMolecule {
  std::string id;       // record identity ("lib.smi:3", a dataset entry's id)
  std::string name;     // title / name, "" when none
  std::string smiles;   // canonical SMILES
  std::string formula;  // Hill formula (explicit H counted)
  double mass = NAN;    // monoisotopic mass; NaN when unknown
};

struct AlignIndex {
  int64_t dim = 0;
  std::vector<float> embeddings;              // (size(), dim) row-major
  std::vector<AlignIndexMolecule> molecules;  // parallel to the embedding rows
  std::string model_fingerprint;              // align_model_fingerprint of the model that embedded them
  std::string model_path;                     // where that model was read from (informational)
  std::string model_config;                   // its AlignModelConfig JSON (informational)
  std::string source;                         // the library or dataset it was built from (informational)

  int64_t size() const { return static_cast<int64_t>(molecules.size()); }
  const float* row(int64_t i) const { return embeddings.data() + i * dim; }
  // dim >= 1, embeddings.size() == size() * dim, every value finite; throws larmor::Error naming `what`.
  void validate(const std::string& what = "align index") const;
};

// "fnv1a64:<16 hex digits>": FNV-1a over 8-byte words of the model's config JSON and its state dict
// (parameters and buffers in name order, as f32 values, with their names and shapes).
std::string align_model_fingerprint(const AlignModel& model);

// Writes the index (atomic, see layers/safetensors.h); `embeddings_as` F16/BF16 halves the file. Throws on an
// invalid index or a header beyond the format's 100 MB limit.
void save_align_index(const std::string& path, const AlignIndex& index, StoredFloat embeddings_as = StoredFloat::F32);
// Reads and checks an index file; throws larmor::Error naming the file and the problem.
AlignIndex load_align_index(const std::string& path);
// Throws larmor::Error unless the index was built by the model with this fingerprint and width.
void check_align_index_model(const AlignIndex& index, const std::string& index_name, const AlignModel& model,
                             const std::string& model_fingerprint, const std::string& model_name);

// ---- chemistry helpers ----
// Monoisotopic mass of the molecule's atoms (hydrogens are explicit in a chem::Molecule); NaN when an element
// has no table entry (the common organic elements, alkali/alkaline-earth metals and frequent metals are in it).
double monoisotopic_mass(const Molecule& mol);
double monoisotopic_mass(int atomic_number);  // NaN when not in the table
// Element counts of a formula written as element symbols with optional counts ("C9H10O2", "H2O", "CH3Cl"),
// in any order, repeats added up. Throws larmor::Error naming the formula on anything else (charges,
// brackets, unknown symbols).
std::map<std::string, int64_t> parse_formula(const std::string& formula);
// The formula in Hill order (C, H, then alphabetical; alphabetical when there is no C) of those counts.
std::string hill_formula_of_counts(const std::map<std::string, int64_t>& counts);

// ---- building ----
// Embeds molecule graphs in batches (eval mode, no gradients) into an index. The model's training mode is
// restored by finish().
class AlignIndexBuilder {
 public:
  AlignIndexBuilder(AlignModel& model, int64_t batch = 256);
  ~AlignIndexBuilder();
  AlignIndexBuilder(const AlignIndexBuilder&) = delete;
  AlignIndexBuilder& operator=(const AlignIndexBuilder&) = delete;
  // `graph`: align_graph_input of the molecule (graph fields only; pairs and peaks are ignored).
  void add(AlignMoleculeInput graph, AlignIndexMolecule info);
  int64_t size() const;  // molecules added so far
  AlignIndex finish();   // embeds what is pending; the index's model fields are filled (model_path left "")

 private:
  void flush();
  AlignModel& model_;
  int64_t batch_;
  bool was_training_;
  AlignIndex index_;
  std::vector<AlignMoleculeInput> pending_;
};

// The index entry of a molecule (no embedding): id, title, SMILES, formula, mass.
AlignIndexMolecule align_index_molecule(const Molecule& mol);

// An index of every dataset entry with a carbon (all splits: the library evaluate_align ranks against). The
// name is the title, else the NMRShiftDB2 id. Counts of skipped entries go to *skipped when given.
AlignIndex build_align_index(AlignModel& model, const Dataset& dataset, int64_t batch = 256, int64_t* skipped = nullptr);

// ---- query ----
// The spectrum embedding (projection_dim) of a 13C peak list, with the model's spectrum encoder (eval mode,
// no gradients). Throws larmor::Error "<name>: ..." on an empty list, a non-finite shift or one outside
// -50..350 ppm.
std::vector<float> embed_peak_list(AlignModel& model, const std::vector<Peak>& peaks, const std::string& name = "peaks");

// ---- search ----
struct RetrievalFilter {
  std::string formula;   // "": any; else only molecules with these element counts (any order)
  double mass = NAN;     // NaN: any; else only molecules with |mass - this| <= mass_tolerance
  double mass_tolerance = 0.5;
};

struct RetrievalHit {
  int64_t molecule = 0;      // row of the index
  int64_t rank = 0;          // 1-based
  double score = 0;          // logit_scale * dot
  double probability = 0;    // softmax of the scores over the candidates
  // Filled by rerank_retrieval for the hits it re-ordered (reranked = true); otherwise NaN / -1.
  bool reranked = false;
  double combined_score = NAN;     // fit score + combine_weight * score; -infinity when not predictable
  double fit_error_ppm = NAN;      // summed |predicted - observed| of the optimal peak -> class map; NaN if none
  int32_t unmatched_classes = -1;  // carbon classes left without a peak; -1 if no fit
};

struct RetrievalResult {
  int64_t library = 0;       // molecules in the index
  int64_t candidates = 0;    // molecules that pass the filters
  std::vector<RetrievalHit> hits;  // min(top, candidates), best first
  int64_t reranked = 0;      // hits re-ordered by rerank_retrieval (0: the alignment order only)
};

// Ranks the index for a query embedding (index.dim values). Throws larmor::Error on a wrong query width,
// top < 1, a non-positive logit scale, a negative mass tolerance or an unparseable filter formula.
RetrievalResult search_align_index(const AlignIndex& index, const std::vector<float>& query, double logit_scale,
                                   int64_t top, const RetrievalFilter& filter = {});

// ---- re-ranking with the shift predictor ----
// The evaluated combination (chem/align_training.h, `larmor eval align`: alignment 82.1 % in-group top-1,
// shift predictor 92.5 %, combined 93.6 %): each of the first `rerank_top` hits gets
//   combined = fit_predicted_spectrum(distinct peaks, classes).score(unmatched_penalty) + combine_weight * score
// (ppm + ppm-per-nat * nats) and those hits are re-ordered by it, best first (ties keep the alignment order);
// the hits behind them keep their alignment order. Ranks are renumbered and the list is cut to `top`. The
// peak list is used as its distinct (ppm, multiplicity) pairs, as evaluate_align and the query embedding do.
// The candidate's predicted carbon classes come from `classes_of` (the shift model and Open Babel live on the
// caller's side; chem::predicted_carbon_classes makes them from per-atom predictions); when it throws, the
// candidate keeps combined = -infinity and `warn` (when given) gets "<id> (<smiles>): <reason>". A candidate
// that cannot explain the list (more peaks than carbons) also scores -infinity, without a warning.
// Throws larmor::Error on rerank_top < 1, top < 1, a negative unmatched_penalty or combine_weight.
using CandidateClassesFn = std::function<std::vector<CarbonClass>(const AlignIndexMolecule&)>;
void rerank_retrieval(RetrievalResult& result, const AlignIndex& index, const std::vector<Peak>& peaks,
                      const CandidateClassesFn& classes_of, int64_t rerank_top, int64_t top, double unmatched_penalty,
                      double combine_weight, const std::function<void(const std::string&)>& warn = {});

// ---- output ----
// table: one line per hit (rank, score, probability, mass, formula, name, SMILES) under a summary line;
// csv: rank,score,probability,id,name,smiles,formula,mass; json: {"library", "candidates", "hits": [...]}.
// After rerank_retrieval (result.reranked > 0) they also carry the combined score, the fit error (ppm) and
// the unmatched classes: table columns "combined", "fit_ppm", "unm" after "prob"; csv columns
// combined_score,fit_error_ppm,unmatched_classes at the end; json fields of the same names (null when not
// available) and "reranked" (the count) at the top level. Without re-ranking the output is unchanged.
std::string format_retrieval_table(const RetrievalResult& result, const AlignIndex& index, const std::string& query_name);
std::string format_retrieval_csv(const RetrievalResult& result, const AlignIndex& index);
std::string format_retrieval_json(const RetrievalResult& result, const AlignIndex& index, const std::string& query_name);

}  // namespace larmor::chem
