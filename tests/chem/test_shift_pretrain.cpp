// The pretraining loop (chem/shift_pretrain) on the hand-built chain fixture with a tiny config: it uses
// every train-split molecule with 3-D coordinates (also those without shifts), the training and validation
// losses go down, a run stopped after k steps and resumed ends with bit-identical weights and optimizer
// state, and the checkpoint initialises train_shift (backbone copied, shift heads fresh; a config that
// differs in size is refused naming the file).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "chem/shift_pretrain.h"
#include "chem/shift_training.h"
#include "engine/error.h"
#include "layers/safetensors.h"
#include "tests/chem/shift_fixtures.h"
#include "tests/test_util.h"

using namespace larmor;
using namespace larmor::chem;

namespace {
using test::chain_entry;
using test::differing_tensors;
using test::tiny_shift_config;

// The chain dataset (7 train, 2 valid, 1 test) and two more train entries: one without any shift, one
// without coordinates.
Dataset pretrain_dataset() {
  Dataset ds = test::chain_dataset();
  DatasetEntry unlabelled = chain_entry(7, true, Split::Train);
  unlabelled.assigned.clear();
  ds.entries.push_back(unlabelled);
  DatasetEntry flat = chain_entry(3, false, Split::Train);
  flat.mol.coords.clear();
  ds.entries.push_back(flat);
  return ds;
}

int64_t count_train_with_3d(const Dataset& ds) {
  int64_t n = 0;
  for (const DatasetEntry& e : ds.entries) n += e.split == Split::Train && e.mol.has_3d();
  return n;
}

const test::TempDir temp_root("shift_pretrain");  // run folders under one folder per process, removed at exit
std::string temp_dir(const std::string& name) { return temp_root.fresh(name); }

ShiftPretrainOptions tiny_options(const std::string& out, double dropout) {
  ShiftPretrainOptions o;
  o.out_dir = out;
  o.model_config = tiny_shift_config(32, dropout);
  o.batch = 3;
  o.lr = 2e-3;
  o.seed = 5;
  o.checkpoint_every = 0;
  o.eval_batch = 4;
  o.noise.mask_prob = 0.3;  // tiny molecules: select enough atoms per batch
  return o;
}

double mean_of(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / static_cast<double>(to - from);
}

}  // namespace

TEST_CASE("pretrain shift: uses every train molecule with 3-D coordinates; training and validation loss go down") {
  const Dataset ds = pretrain_dataset();
  ShiftPretrainOptions o = tiny_options(temp_dir("down"), 0.0);
  o.epochs = 60;
  o.warmup_fraction = 0.05;
  std::vector<double> losses, val;
  int64_t epoch_molecules = -1;
  const ShiftPretrainResult r = pretrain_shift(ds, o, [&](const ShiftPretrainEvent& e) {
    if (e.kind == ShiftPretrainEvent::Kind::EpochStart) epoch_molecules = e.epoch_molecules;
    if (e.kind == ShiftPretrainEvent::Kind::Step) {
      losses.push_back(e.loss);
      CHECK(std::isfinite(e.loss));
      CHECK(e.parts.selected > 0);
    }
    if (e.kind == ShiftPretrainEvent::Kind::Validation) val.push_back(e.val_loss);
  });
  CHECK(epoch_molecules == count_train_with_3d(ds));  // 8: the one without shifts included, the flat one not
  CHECK(epoch_molecules == 8);
  REQUIRE(losses.size() == 60 * 3);  // 8 molecules, batches of 3
  CHECK(r.steps == 180);
  REQUIRE(val.size() == 60);
  const double head = mean_of(losses, 0, 15), tail = mean_of(losses, losses.size() - 15, losses.size());
  CHECK_MESSAGE(tail < 0.7 * head, "training loss " << head << " -> " << tail);
  CHECK_MESSAGE(r.best_val_loss < 0.8 * val.front(), "valid loss " << val.front() << " -> best " << r.best_val_loss);
  CHECK(std::filesystem::exists(r.best_path));
  CHECK(std::filesystem::exists(r.log_path));

  // The checkpoint reads like a shift checkpoint: config without shift heads, standardiser, data options.
  const LoadedShiftModel m = load_shift_model(r.best_path);
  CHECK(m.metadata.at("task") == "shift_pretrain");
  for (bool h : m.model->config().nuclei) CHECK_FALSE(h);
  CHECK(m.model->config().layers == 2);
  CHECK(m.standardizer.std[static_cast<int>(Nucleus::C13)] > 1.0);
}

TEST_CASE("pretrain shift: resume after k steps gives bit-identical final weights and optimizer state") {
  const Dataset ds = pretrain_dataset();
  // 8 molecules, batches of 3: 3 batches per epoch; 3 epochs = 9 steps; dropout on, so the dropout step
  // and the noise step must both be restored.
  ShiftPretrainOptions full = tiny_options(temp_dir("full"), 0.1);
  full.epochs = 3;
  const ShiftPretrainResult a = pretrain_shift(ds, full);
  CHECK(a.steps == 9);
  for (int64_t k : {4, 6}) {  // mid-epoch, and exactly at an epoch end
    ShiftPretrainOptions part = tiny_options(temp_dir("part" + std::to_string(k)), 0.1);
    part.epochs = 3;
    part.max_steps = k;
    CHECK(pretrain_shift(ds, part).steps == k);
    part.max_steps = 0;
    part.resume = true;
    const ShiftPretrainResult b = pretrain_shift(ds, part);
    CHECK(b.steps == 9);
    const int differing = differing_tensors(a.last_path, b.last_path);
    CHECK_MESSAGE(differing == 0, "resume after " << k << " steps: " << differing << " tensors differ");
    const SafetensorsFile fa = load_safetensors(a.last_path), fb = load_safetensors(b.last_path);
    CHECK(fa.metadata.at("dropout_step") == fb.metadata.at("dropout_step"));
    CHECK(fa.metadata.at("val_loss") == fb.metadata.at("val_loss"));
  }
  // different trajectory options are refused, naming the option
  ShiftPretrainOptions bad = tiny_options(temp_root.file("part4"), 0.1);
  bad.epochs = 3;
  bad.resume = true;
  bad.noise.coord_noise = 0.5;
  CHECK_THROWS_WITH_AS(pretrain_shift(ds, bad), doctest::Contains("coord_noise"), Error);
}

TEST_CASE("pretrain shift: init_from copies the backbone into train_shift; a different size is refused") {
  const Dataset ds = pretrain_dataset();
  ShiftPretrainOptions po = tiny_options(temp_dir("pre"), 0.0);
  po.epochs = 2;
  const ShiftPretrainResult pre = pretrain_shift(ds, po);
  const SafetensorsFile pf = load_safetensors(pre.last_path);

  // directly: every backbone tensor equals the file's, the shift heads keep their fresh values
  ShiftModelConfig fine_cfg = tiny_shift_config(32, 0.0);
  fine_cfg.nuclei = {true, true, false, false};
  ShiftModel fresh(fine_cfg, 99), model(fine_cfg, 99);
  const std::vector<std::string> untouched = init_from_pretrained(model, pre.last_path);
  CHECK(untouched.size() == 8);  // weight and bias of head_1H_fc1/fc2 and head_13C_fc1/fc2
  const auto state = model.state_dict(), fresh_state = fresh.state_dict();
  for (const auto& [name, t] : state) {
    auto it = pf.tensors.find(name);
    const Tensor& want = it == pf.tensors.end() ? fresh_state.at(name) : it->second;
    REQUIRE(want.nbytes() == t.nbytes());
    CHECK_MESSAGE(std::memcmp(want.raw_data(), t.raw_data(), t.nbytes()) == 0, name);
  }
  const Tensor qkv = state.at("layers.1.qkv.weight"), fresh_qkv = fresh_state.at("layers.1.qkv.weight");
  CHECK(std::memcmp(qkv.raw_data(), fresh_qkv.raw_data(), qkv.nbytes()) != 0);  // really changed by the copy

  // through train_shift: one step at a negligible learning rate leaves the backbone at the pretrained values
  ShiftTrainOptions so = test::tiny_train_options(temp_dir("fine"), 0.0);
  so.lr = 1e-12;
  so.weight_decay = 0;
  so.max_steps = 1;
  so.init_from = pre.last_path;
  std::string messages;
  const ShiftTrainResult fr = train_shift(ds, so, [&](const ShiftTrainEvent& e) {
    if (e.kind == ShiftTrainEvent::Kind::Message) messages += e.message + "\n";
  });
  CHECK(messages.find("initialised from " + pre.last_path) != std::string::npos);
  const SafetensorsFile ff = load_safetensors(fr.last_path);
  CHECK(ff.metadata.at("init_from") == pre.last_path);
  for (const char* name : {"layers.0.fc1.weight", "tokens.weight", "gbf_mean", "coord_fc1.weight"}) {
    const std::vector<float> a = pf.tensors.at(name).to_vector<float>(), b = ff.tensors.at(name).to_vector<float>();
    REQUIRE(a.size() == b.size());
    double diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    CHECK_MESSAGE(diff < 1e-6, name << ": max difference " << diff);
  }
  CHECK(ff.tensors.count("head_13C_fc1.weight") == 1);

  // a backbone of another size is refused, naming the file and the field
  ShiftTrainOptions wide = so;
  wide.out_dir = temp_dir("wide");
  ShiftModelConfig wc = tiny_shift_config(32, 0.0);
  wc.dim = 48;
  wide.model_config = wc;
  CHECK_THROWS_WITH_AS(train_shift(ds, wide), doctest::Contains(pre.last_path.c_str()), Error);
  CHECK_THROWS_WITH_AS(train_shift(ds, wide), doctest::Contains("dim (file 32, model 48)"), Error);
  ShiftModel deeper_model([] {
    ShiftModelConfig c = tiny_shift_config(32, 0.0);
    c.layers = 3;
    return c;
  }(), 1);
  CHECK_THROWS_WITH_AS(init_from_pretrained(deeper_model, pre.last_path), doctest::Contains("layers (file 2, model 3)"), Error);
  CHECK_THROWS_WITH_AS(init_from_pretrained(model, "/nonexistent/pre.safetensors"), doctest::Contains("no such file"), Error);
}

TEST_CASE("pretrain shift: bad inputs give clear errors") {
  const Dataset ds = pretrain_dataset();
  ShiftPretrainOptions o = tiny_options(temp_dir("bad"), 0.0);
  o.resume = true;
  CHECK_THROWS_WITH_AS(pretrain_shift(ds, o), doctest::Contains("no checkpoint"), Error);
  o.resume = false;
  o.epochs = 0;
  CHECK_THROWS_WITH_AS(pretrain_shift(ds, o), doctest::Contains("--epochs"), Error);
  o.epochs = 1;
  o.noise.mask_prob = -0.1;
  CHECK_THROWS_WITH_AS(pretrain_shift(ds, o), doctest::Contains("mask_prob"), Error);
  Dataset empty;
  o.noise.mask_prob = 0.15;
  CHECK_THROWS_WITH_AS(pretrain_shift(empty, o), doctest::Contains("no training molecules"), Error);
}
