// The alignment training loop and metrics (chem/align_training): on a fixture of well-separated molecules
// (chains of different lengths, with and without an O, each with its own complete assigned 13C spectrum)
// a short run of a tiny model lowers the loss and then ranks each molecule's own structure first for its
// spectrum; a run stopped after k steps and resumed ends bit-identical to an uninterrupted one; the
// assignment metric equals a hand computation on a constructed score matrix with symmetric carbons; bad
// options and checkpoints give clear errors.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "chem/align_training.h"
#include "engine/error.h"
#include "tests/chem/shift_fixtures.h"
#include "tests/test_util.h"

using namespace larmor;
using namespace larmor::chem;

namespace {

const test::TempDir temp_root("align_training");
std::string temp_dir(const std::string& name) { return temp_root.fresh(name); }

// chain_entry with every 13C shift moved by 7 ppm per carbon of the chain, so no two molecules share a
// peak list; formula C<n>[O].
DatasetEntry separated_entry(int n, bool oxygen, Split split) {
  DatasetEntry e = test::chain_entry(n, oxygen, split);
  for (AssignedShift& a : e.assigned)
    if (a.nucleus == Nucleus::C13) a.shift += 7.0f * static_cast<float>(n);
  e.mol.formula = "C" + std::to_string(n) + (oxygen ? "O" : "");
  return e;
}

// 12 training molecules (2..7 carbons, with and without O), 2 validation molecules.
Dataset separated_dataset() {
  Dataset ds;
  for (int n = 2; n <= 7; ++n)
    for (bool o : {false, true}) ds.entries.push_back(separated_entry(n, o, Split::Train));
  ds.entries.push_back(separated_entry(8, false, Split::Valid));
  ds.entries.push_back(separated_entry(8, true, Split::Valid));
  return ds;
}

AlignTrainOptions tiny_options(const std::string& out, const std::string& encoder) {
  AlignTrainOptions o;
  o.out_dir = out;
  AlignModelConfig c = AlignModelConfig::tiny();
  c.spectrum_encoder = encoder;
  c.peak_ppm_scale = 0.02;  // raw ppm up to ~110 in a tiny model: keep the first layer's inputs O(1)
  c.gin_dropout = 0.0;
  c.projection_dropout = 0.0;
  c.alpha = 0.5;
  o.model_config = c;
  o.batch = 4;
  o.lr = 1e-2;
  o.seed = 3;
  o.checkpoint_every = 0;
  return o;
}

}  // namespace

TEST_CASE("align training: the loss falls and each spectrum retrieves its own structure") {
  // Full-batch steps (B = 12, every training molecule) with the LR decayed to 0: BatchNorm's running
  // statistics (eval mode) then settle on the final weights' batch statistics. With a constant LR on this
  // 12-molecule fixture they lag the fast-moving weights and eval-mode retrieval is far worse than the
  // training loss says.
  const Dataset ds = separated_dataset();
  for (const char* encoder : {"peakset", "cnn"}) {
    CAPTURE(encoder);
    AlignTrainOptions o = tiny_options(temp_dir(std::string("overfit_") + encoder), encoder);
    o.batch = 12;
    o.epochs = 300;
    o.schedule = "warmup-linear";
    std::vector<double> losses;
    int validations = 0;
    const AlignTrainResult r = train_align(ds, o, [&](const AlignTrainEvent& e) {
      if (e.kind == AlignTrainEvent::Kind::Step) losses.push_back(e.loss);
      if (e.kind == AlignTrainEvent::Kind::Validation) ++validations;
    });
    REQUIRE(losses.size() == 300);
    CHECK(validations == 300);
    double first = 0, last = 0;
    for (size_t i = 0; i < 5; ++i) first += losses[i] / 5;
    for (size_t i = losses.size() - 5; i < losses.size(); ++i) last += losses[i] / 5;
    MESSAGE(std::string(encoder) << ": loss " << first << " -> " << last << " in " << r.steps << " steps, " << r.seconds << " s");
    CHECK(last < 0.5 * first);
    CHECK(std::filesystem::exists(r.best_path));
    CHECK(std::filesystem::exists(r.log_path));

    LoadedAlignModel m = load_align_model(r.last_path);
    const AlignDataset train(ds, Split::Train, m.data_options);
    AlignEvalOptions eo;
    eo.group_size = 128;  // one group of the 12
    const AlignEvalReport rep = evaluate_align(*m.model, train, ds, eo);
    MESSAGE(rep.table());
    CHECK(rep.groups == 1);
    CHECK(rep.in_group.n == 12);
    CHECK(rep.in_group.rate(1) == 1.0);
    CHECK(rep.library_size == 14);
    CHECK(rep.library.n == 12);
    CHECK(rep.isomer.n == 0);  // every formula is unique
    CHECK(rep.assignment.molecules == 12);
    CHECK(rep.assignment.peaks == 2 * (2 + 3 + 4 + 5 + 6 + 7));  // the O is no carbon
    CHECK(rep.assignment_by_size.at("<10").molecules == 12);
    CHECK_FALSE(rep.to_json().empty());
  }
}

TEST_CASE("align training: resume after k steps gives bit-identical weights and optimizer state") {
  const Dataset ds = separated_dataset();
  auto options = [&](const std::string& dir) {
    AlignTrainOptions o = tiny_options(dir, "cnn");
    AlignModelConfig c = *o.model_config;
    c.gin_dropout = 0.2;  // dropout on: its stream must resume too
    c.projection_dropout = 0.1;
    o.model_config = c;
    o.epochs = 3;
    return o;
  };
  const std::string full_dir = temp_dir("full");
  const AlignTrainResult full = train_align(ds, options(full_dir));
  CHECK(full.steps == 9);
  for (int k : {2, 3, 7}) {  // inside an epoch, at an epoch boundary, in the last epoch
    const std::string dir = temp_dir("part" + std::to_string(k));
    AlignTrainOptions part = options(dir);
    part.max_steps = k;
    CHECK(train_align(ds, part).steps == k);
    part.max_steps = 0;
    part.resume = true;
    const AlignTrainResult rest = train_align(ds, part);
    CHECK(rest.steps == 9);
    const int differing = test::differing_tensors(full.last_path, rest.last_path);
    CHECK_MESSAGE(differing == 0, "resume after " << k << " steps: " << differing << " tensors differ");
  }
  // a resume with other trajectory options or another model config is refused
  AlignTrainOptions bad = options(full_dir);
  bad.resume = true;
  bad.lr = 5e-3;
  CHECK_THROWS_WITH_AS(train_align(ds, bad), doctest::Contains("lr"), Error);
  bad = options(full_dir);
  bad.resume = true;
  AlignModelConfig c = *bad.model_config;
  c.alpha = 0.2;
  bad.model_config = c;
  CHECK_THROWS_WITH_AS(train_align(ds, bad), doctest::Contains("model config differs"), Error);
}

TEST_CASE("align metrics: peak assignment equals a hand computation with symmetric carbons") {
  // carbons 0 and 2 are equivalent (class 0, 17 ppm); peaks are the carbons' own shifts
  const std::vector<float> ppm = {17, 26, 17, 40};
  const std::vector<int32_t> cls = {0, 1, 0, 2};
  const std::vector<double> scores = {0, 0,   5, 1,   // peak 0
                                      2, 1.9, 0, 0,   // peak 1
                                      4, 0,   3, 0,   // peak 2
                                      0, 3,   0, 2};  // peak 3
  // row argmax: 2, 0, 0, 1 -> right, wrong (17 != 26), right (equivalent carbon), wrong
  const std::vector<int32_t> row = assign_peaks(scores, 4, 4, false);
  CHECK(row == std::vector<int32_t>{2, 0, 0, 1});
  CHECK(correct_assignments(row, ppm, cls, ppm, cls) == 2);
  // column softmax (K-M3AID): column log-normalisers
  //   lse0 = log(e^0 + e^2 + e^4 + e^0) = 4.1587, lse1 = log(1 + e^1.9 + 1 + e^3) = 3.3594,
  //   lse2 = log(e^5 + 1 + e^3 + 1) = 5.1387,     lse3 = log(e^1 + 1 + 1 + e^2) = 2.4938
  // peak 1: 2 - 4.1587 = -2.159 < 1.9 - 3.3594 = -1.459 -> carbon 1 (right); the others as the row argmax
  // except none changes: peak 0 -> 2, peak 2 -> 0 (-0.159), peak 3 -> 1 (-0.359 > -0.494)
  const std::vector<int32_t> col = assign_peaks(scores, 4, 4, true);
  CHECK(col == std::vector<int32_t>{2, 1, 0, 1});
  CHECK(correct_assignments(col, ppm, cls, ppm, cls) == 3);

  AssignmentStats st;
  st.add(4, 3);
  st.add(2, 2);
  CHECK(st.molecules == 2);
  CHECK(st.accuracy() == doctest::Approx((0.75 + 1.0) / 2));
  CHECK(st.peak_accuracy() == doctest::Approx(5.0 / 6.0));
  CHECK(st.fully_right_rate() == doctest::Approx(0.5));
  CHECK(std::string(carbon_count_bucket(9)) == "<10");
  CHECK(std::string(carbon_count_bucket(10)) == "10-20");
  CHECK(std::string(carbon_count_bucket(20)) == "10-20");
  CHECK(std::string(carbon_count_bucket(21)) == ">20");

  CHECK(rank_of({0.5f, 0.9f, 0.1f}, 1) == 1);
  CHECK(rank_of({0.5f, 0.9f, 0.1f}, 2) == 3);
  CHECK(rank_of({0.5f, 0.5f, 0.1f}, 1) == 1);  // exact ties count in the query's favour
  TopKStats t;
  for (int64_t r : {1, 3, 7, 12}) t.add(r);
  CHECK(t.rate(1) == doctest::Approx(0.25));
  CHECK(t.rate(5) == doctest::Approx(0.5));
  CHECK(t.rate(10) == doctest::Approx(0.75));
  CHECK_THROWS_AS(assign_peaks(scores, 4, 3, true), Error);
}

TEST_CASE("align training: bad options and checkpoints give clear errors") {
  const Dataset ds = separated_dataset();
  AlignTrainOptions o = tiny_options(temp_dir("bad"), "cnn");
  o.batch = 20;  // more than the 12 training molecules
  CHECK_THROWS_WITH_AS(train_align(ds, o), doctest::Contains("fewer than one batch"), Error);
  o.batch = 4;
  o.schedule = "cosine";
  CHECK_THROWS_WITH_AS(train_align(ds, o), doctest::Contains("schedule"), Error);
  CHECK_THROWS_WITH_AS(resolve_align_config("huge"), doctest::Contains("unknown config"), Error);
  CHECK_THROWS_WITH_AS(load_align_model(temp_root.file("missing.safetensors")), doctest::Contains("no such file"), Error);
}
