// The shift training loop (chem/shift_training): on a tiny hand-built dataset of chain molecules with 3-D
// coordinates and shifts that are a function of the structure, a tiny model config: training reduces the
// loss, a run stopped with max_steps and resumed ends with bit-identical weights and optimizer state,
// evaluation after overfitting gives a small MAE, and bad inputs give clear errors.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "chem/shift_training.h"
#include "engine/error.h"
#include "layers/safetensors.h"
#include "tests/chem/shift_fixtures.h"
#include "tests/test_util.h"

using namespace larmor;
using namespace larmor::chem;

namespace {
using test::tiny_train_options;

const test::TempDir temp_root("shift_training");  // run folders under one folder per process, removed at exit
std::string temp_dir(const std::string& name) { return temp_root.fresh(name); }

}  // namespace

TEST_CASE("shift training: loss goes down, eval on the training set after overfitting is small") {
  const Dataset ds = test::chain_dataset();
  ShiftTrainOptions o = tiny_train_options(temp_dir("overfit"), 0.0);
  o.epochs = 200;
  o.warmup_fraction = 0.05;
  std::vector<double> losses;
  int validations = 0;
  const ShiftTrainResult r = train_shift(ds, o, [&](const ShiftTrainEvent& e) {
    if (e.kind == ShiftTrainEvent::Kind::Step) losses.push_back(e.loss);
    if (e.kind == ShiftTrainEvent::Kind::Validation) ++validations;
  });
  REQUIRE(losses.size() >= 600);
  CHECK(validations == 200);
  double first = 0, last = 0;
  for (size_t i = 0; i < 3; ++i) first += losses[i] / 3;
  for (size_t i = losses.size() - 3; i < losses.size(); ++i) last += losses[i] / 3;
  MESSAGE("loss " << first << " -> " << last << " in " << r.steps << " steps, " << r.seconds << " s");
  CHECK(last < 0.25 * first);
  CHECK(std::filesystem::exists(r.best_path));
  CHECK(std::filesystem::exists(r.last_path));
  CHECK(std::filesystem::exists(r.log_path));

  // evaluation on the training split with the last checkpoint, loaded as `larmor eval shift` does
  LoadedShiftModel m = load_shift_model(r.last_path);
  const ShiftDataset train(ds, Split::Train, m.standardizer, m.data_options);
  ShiftEvalReport rep = evaluate_shift(*m.model, train, ds, 4);
  rep.split = "train";
  const double c_mae = rep.assigned[static_cast<int>(Nucleus::C13)].mae();
  const double h_mae = rep.assigned[static_cast<int>(Nucleus::H1)].mae();
  MESSAGE(rep.table());
  CHECK(rep.assigned[static_cast<int>(Nucleus::C13)].n > 20);
  CHECK(c_mae < 0.2 * m.standardizer.std[static_cast<int>(Nucleus::C13)]);
  CHECK(h_mae < 0.2 * m.standardizer.std[static_cast<int>(Nucleus::H1)]);
  CHECK(rep.carbon_by_type.count("CH3") == 1);
  CHECK(rep.carbon_by_type.count("CH2") == 1);
  CHECK(rep.assigned_by_solvent.count("CDCl3") == 1);
  CHECK(rep.to_json().find("\"carbon_by_type\"") != std::string::npos);
}

TEST_CASE("shift training: resume after k steps gives bit-identical final weights and optimizer state") {
  const Dataset ds = test::chain_dataset();
  // 7 training molecules, batches of 3: 3 batches per epoch; 3 epochs = 9 steps. Dropout on, so the
  // dropout step must be restored too.
  ShiftTrainOptions full = tiny_train_options(temp_dir("full"), 0.1);
  full.epochs = 3;
  const ShiftTrainResult a = train_shift(ds, full);
  CHECK(a.steps == 9);

  for (int64_t k : {4, 6}) {  // mid-epoch, and exactly at an epoch end
    ShiftTrainOptions part = tiny_train_options(temp_dir("part" + std::to_string(k)), 0.1);
    part.epochs = 3;
    part.max_steps = k;
    const ShiftTrainResult b1 = train_shift(ds, part);
    CHECK(b1.steps == k);
    part.max_steps = 0;
    part.resume = true;
    const ShiftTrainResult b2 = train_shift(ds, part);
    CHECK(b2.steps == 9);

    const int differing = test::differing_tensors(a.last_path, b2.last_path);
    CHECK_MESSAGE(differing == 0, "resume after " << k << " steps: " << differing << " tensors differ");
    const SafetensorsFile fa = load_safetensors(a.last_path), fb = load_safetensors(b2.last_path);
    CHECK(fa.metadata.at("dropout_step") == fb.metadata.at("dropout_step"));
    CHECK(fa.metadata.at("step") == fb.metadata.at("step"));
  }

  // a resume with different trajectory options is refused, naming the option
  ShiftTrainOptions bad = tiny_train_options(temp_root.file("part4"), 0.1);
  bad.epochs = 3;
  bad.resume = true;
  bad.lr = 1e-3;
  try {
    train_shift(ds, bad);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("lr") != std::string::npos);
  }
}

TEST_CASE("shift training: bad inputs give clear errors") {
  CHECK_THROWS_WITH_AS(resolve_shift_config("medium"), doctest::Contains("unknown config 'medium'"), Error);
  CHECK_THROWS_WITH_AS(resolve_shift_config("/nonexistent/cfg.json"), doctest::Contains("cannot read"), Error);
  CHECK_THROWS_AS(load_dataset("/nonexistent/data.safetensors"), Error);
  CHECK_THROWS_WITH_AS(load_shift_model("/nonexistent/best.safetensors"), doctest::Contains("no such file"), Error);
  CHECK_THROWS_WITH_AS(parse_nuclei("13C,2H"), doctest::Contains("unknown nucleus '2H'"), Error);
  CHECK_THROWS_WITH_AS(parse_sampler_mode("both"), doctest::Contains("unknown mode"), Error);

  const Dataset ds = test::chain_dataset();
  ShiftTrainOptions o = tiny_train_options(temp_dir("bad"), 0.0);
  o.resume = true;
  CHECK_THROWS_WITH_AS(train_shift(ds, o), doctest::Contains("no checkpoint"), Error);
  o.resume = false;
  o.nuclei = parse_nuclei("19F");
  CHECK_THROWS_WITH_AS(train_shift(ds, o), doctest::Contains("no usable training molecules"), Error);
  o.nuclei = parse_nuclei("13C");
  o.epochs = 0;
  CHECK_THROWS_WITH_AS(train_shift(ds, o), doctest::Contains("--epochs"), Error);
}

TEST_CASE("shift training: a step budget fixes the schedule and ends mid-epoch with a validation") {
  const Dataset ds = test::chain_dataset();
  // 7 training molecules in batches of 3: 3 batches per epoch; a budget of 7 steps = 2 full epochs + 1 batch.
  ShiftTrainOptions o = tiny_train_options(temp_dir("budget"), 0.1);
  o.steps = 7;
  o.warmup_fraction = 0.0;
  std::vector<double> lrs;
  int validations = 0;
  const ShiftTrainResult r = train_shift(ds, o, [&](const ShiftTrainEvent& e) {
    if (e.kind == ShiftTrainEvent::Kind::Step) lrs.push_back(e.lr);
    if (e.kind == ShiftTrainEvent::Kind::Validation) ++validations;
  });
  CHECK(r.steps == 7);
  REQUIRE(lrs.size() == 7);
  CHECK(validations == 3);  // after epochs 1, 2 and the partial third
  CHECK(r.epochs_done == 3);
  // linear decay to 0 over exactly 7 steps: lr(step) = peak * (1 - step / 7)
  for (size_t i = 0; i < lrs.size(); ++i) CHECK(lrs[i] == doctest::Approx(o.lr * (1.0 - static_cast<double>(i + 1) / 7.0)));
  // resuming a budgeted run from a checkpoint after 4 steps ends with the same weights
  ShiftTrainOptions a = tiny_train_options(temp_dir("budget_a"), 0.1), b = tiny_train_options(temp_dir("budget_b"), 0.1);
  a.steps = b.steps = 7;
  b.max_steps = 4;
  train_shift(ds, a);
  train_shift(ds, b);
  b.max_steps = 0;
  b.resume = true;
  train_shift(ds, b);
  CHECK(test::differing_tensors(a.out_dir + "/last.safetensors", b.out_dir + "/last.safetensors") == 0);
  o.steps = -1;
  CHECK_THROWS_WITH_AS(train_shift(ds, o), doctest::Contains("--steps"), Error);
}
