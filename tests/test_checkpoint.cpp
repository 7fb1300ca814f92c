// Checkpoints: safetensors round trips bit for bit, the byte layout checked by hand (no Python),
// every kind of damaged file rejected with an error naming the file, and strict module loading.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "engine/rng.h"
#include "layers/basic.h"
#include "layers/checkpoint.h"
#include "layers/safetensors.h"
#include "tests/test_util.h"

using namespace larmor;
namespace fs = std::filesystem;

namespace {

using test::TempDir;
using test::read_bytes;
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
// A hand-made file: length prefix + header text + data.
std::string make_file(const std::string& header, const std::string& data, uint64_t hlen_override = 0) {
  uint64_t n = hlen_override ? hlen_override : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

// Expects load_safetensors(path) to throw an Error whose message names the file and contains `what`.
void expect_load_error(const std::string& path, const std::string& what) {
  try {
    load_safetensors(path);
    FAIL("no error for " << path);
  } catch (const Error& e) {
    std::string m = e.what();
    INFO(m);
    CHECK(m.find(path) != std::string::npos);
    CHECK(m.find(what) != std::string::npos);
  }
}

std::map<std::string, Tensor> sample_tensors() {
  std::map<std::string, Tensor> t;
  t["b.f32"] = rand_normal({3, 5}, 0, 1, 1);
  t["a.f64"] = rand_normal({2, 2, 2}, 0, 1, 2, 0, DType::F64);
  t["c.i32"] = rand_int({7}, -1000, 1000, 3);
  t["d.i64"] = Tensor::from_vector<int64_t>({std::numeric_limits<int64_t>::min(), -1, 0, std::numeric_limits<int64_t>::max()}, {2, 2});
  t["e.scalar"] = Tensor::scalar(2.5, DType::F64);
  t["f.empty"] = Tensor::zeros({0, 3});
  // Special values must survive bit for bit.
  t["g.special"] = Tensor::from_vector<float>({NAN, INFINITY, -INFINITY, -0.0f, 1e-40f, std::numeric_limits<float>::max()}, {6});
  return t;
}

}  // namespace

TEST_CASE("safetensors: round trip of every dtype and the metadata is bit for bit") {
  TempDir tmp("ckpt");
  std::string path = tmp.file("all.safetensors");
  auto tensors = sample_tensors();
  std::map<std::string, std::string> meta = {{"config", R"({"dim": 32, "name": "x"})"}, {"step", "123"}, {"empty", ""}};
  save_safetensors(path, tensors, meta);
  SafetensorsFile f = load_safetensors(path);
  REQUIRE(f.tensors.size() == tensors.size());
  for (auto& [name, t] : tensors) {
    INFO(name);
    REQUIRE(f.tensors.count(name) == 1);
    CHECK(same_bytes(f.tensors.at(name), t));
  }
  CHECK(f.metadata == meta);
  // Atomic write leaves no temporary behind; overwriting works.
  save_safetensors(path, {{"x", Tensor::ones({2})}});
  CHECK(load_safetensors(path).tensors.size() == 1);
  CHECK(load_safetensors(path).metadata.empty());
  int files = 0;
  for (auto& e : fs::directory_iterator(tmp.dir)) files += e.is_regular_file();
  CHECK(files == 1);
  CHECK_THROWS_AS(save_safetensors(tmp.file("no/such/dir/x.safetensors"), tensors), Error);
  CHECK_THROWS_AS(save_safetensors(path, {{"__metadata__", Tensor::ones({1})}}), Error);
}

TEST_CASE("safetensors: the byte layout follows the spec") {
  TempDir tmp("ckpt");
  std::string path = tmp.file("layout.safetensors");
  auto tensors = sample_tensors();
  save_safetensors(path, tensors, {{"k", "v"}});
  std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  REQUIRE(8 + n <= bytes.size());
  CHECK((8 + n) % 8 == 0);  // data section aligned
  CHECK(bytes[8] == '{');
  nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  CHECK(h["__metadata__"]["k"] == "v");
  const std::string data = bytes.substr(8 + n);
  const std::map<DType, std::string> names = {{DType::F32, "F32"}, {DType::F64, "F64"}, {DType::I32, "I32"}, {DType::I64, "I64"}};
  uint64_t expect_begin = 0;
  for (auto& [name, t] : tensors) {  // std::map: sorted by name, which is the storage order
    INFO(name);
    REQUIRE(h.contains(name));
    const auto& e = h[name];
    CHECK(e["dtype"] == names.at(t.dtype()));
    CHECK(e["shape"].get<std::vector<int64_t>>() == t.shape());
    uint64_t b = e["data_offsets"][0], en = e["data_offsets"][1];
    CHECK(b == expect_begin);
    CHECK(en - b == t.nbytes());
    CHECK((t.nbytes() == 0 || std::memcmp(data.data() + b, t.raw_data(), t.nbytes()) == 0));
    expect_begin = en;
  }
  CHECK(expect_begin == data.size());
  // Little-endian by construction: the i64 tensor's first value (INT64_MIN) is 00 .. 00 80.
  uint64_t b = h["d.i64"]["data_offsets"][0];
  CHECK(static_cast<unsigned char>(data[b + 7]) == 0x80);
  CHECK(static_cast<unsigned char>(data[b]) == 0x00);
}

TEST_CASE("safetensors: f32 stored as F16 / BF16 has the IEEE bit patterns and loads back as f32") {
  TempDir tmp("ckpt");
  // Values with known encodings (IEEE 754 binary16 and bfloat16 tables, round to nearest even):
  //   1 -> 3C00 / 3F80; -2 -> C000 / C000; 0.1 -> 2E66 (0.0999755859375) / 3DCD (0.10009765625);
  //   65504 (f16 max) -> 7BFF / 477F (65280); 2^-24 (smallest f16 subnormal) -> 0001 / 3380;
  //   2^-25 (a tie between 0 and 2^-24: even is 0) -> 0000 / 3300; 1 + 2^-11 (a tie: even is 1) -> 3C00 / 3F80.
  const std::vector<float> values = {1.0f, -2.0f, 0.1f, 65504.0f, 0x1p-24f, 0x1p-25f, 1.0f + 0x1p-11f};
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x2E66, 0x7BFF, 0x0001, 0x0000, 0x3C00};
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC000, 0x3DCD, 0x4780, 0x3380, 0x3300, 0x3F80};
  for (StoredFloat kind : {StoredFloat::F16, StoredFloat::BF16}) {
    INFO(stored_float_name(kind));
    const std::vector<uint16_t>& bits = kind == StoredFloat::F16 ? f16 : bf16;
    std::map<std::string, Tensor> tensors = {
        {"w", Tensor::from_vector<float>(values, {7})},
        {"big", Tensor::from_vector<float>({1.0f, 1e6f}, {2})},  // outside the f16 range
        {"idx", Tensor::from_vector<int64_t>({3, -4}, {2})}};  // integers are never converted
    const std::string path = tmp.file(std::string(stored_float_name(kind)) + ".safetensors");
    save_safetensors(path, tensors, {}, kind);
    const std::string bytes = read_bytes(path);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
    const nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
    CHECK(h["w"]["dtype"] == (kind == StoredFloat::F16 ? "F16" : "BF16"));
    CHECK(h["big"]["dtype"] == (kind == StoredFloat::F16 ? "F32" : "BF16"));
    CHECK(h["idx"]["dtype"] == "I64");
    const std::string data = bytes.substr(8 + n);
    const uint64_t b = h["w"]["data_offsets"][0];
    for (size_t i = 0; i < values.size(); ++i) {
      const uint16_t got = static_cast<uint16_t>(static_cast<unsigned char>(data[b + 2 * i]) |
                                                 (static_cast<unsigned char>(data[b + 2 * i + 1]) << 8));
      CHECK_MESSAGE(got == bits[i], "value " << values[i]);
    }
    const SafetensorsFile f = load_safetensors(path);
    REQUIRE(f.tensors.at("w").dtype() == DType::F32);
    const std::vector<float> back = f.tensors.at("w").to_vector<float>();
    const std::vector<float> expect_f16 = {1.0f, -2.0f, 0.0999755859375f, 65504.0f, 0x1p-24f, 0.0f, 1.0f};
    const std::vector<float> expect_bf16 = {1.0f, -2.0f, 0.10009765625f, 65536.0f, 0x1p-24f, 0x1p-25f, 1.0f};
    CHECK(back == (kind == StoredFloat::F16 ? expect_f16 : expect_bf16));
    CHECK(f.tensors.at("idx").to_vector<int64_t>() == std::vector<int64_t>{3, -4});
    CHECK(f.tensors.at("big").to_vector<float>()[1] == (kind == StoredFloat::F16 ? 1e6f : 999424.0f));
  }
  CHECK_THROWS_WITH_AS(parse_stored_float("f8"), doctest::Contains("f8"), Error);
}

TEST_CASE("safetensors: damaged files are clear errors naming the file") {
  TempDir tmp("ckpt");
  std::string good = tmp.file("good.safetensors");
  save_safetensors(good, sample_tensors(), {{"k", "v"}});
  const std::string bytes = read_bytes(good);

  std::string p = tmp.file("truncated.safetensors");
  write_bytes(p, bytes.substr(0, bytes.size() - 5));
  expect_load_error(p, "truncated");

  write_bytes(p, bytes.substr(0, 5));
  expect_load_error(p, "shorter than the 8-byte header length");

  write_bytes(p, bytes.substr(0, 40));
  expect_load_error(p, "larger than the file");

  std::string corrupt = bytes;
  corrupt[bytes.find(':', 8)] = '#';  // inside the JSON
  write_bytes(p, corrupt);
  expect_load_error(p, "not valid JSON");

  std::string huge = bytes;
  huge[6] = 0x10;  // header length ~ 2^52
  write_bytes(p, huge);
  expect_load_error(p, "larger than the file");

  std::string extra = bytes + "xyz";
  write_bytes(p, extra);
  expect_load_error(p, "tensors cover");

  expect_load_error(tmp.file("missing.safetensors"), "cannot open");

  // Hand-made headers for the structural checks.
  auto check = [&](const std::string& header, const std::string& data, const std::string& what) {
    write_bytes(p, make_file(header, data));
    expect_load_error(p, what);
  };
  std::string d16(16, '\0');
  check(R"({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", std::string(2, '\0'), "unsupported dtype 'F8_E4M3'");
  check(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
        d16.substr(0, 12), "overlaps");
  check(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", d16.substr(0, 8), "needs 12");
  check(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", d16.substr(0, 4), "past the end");
  check(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", d16, "reversed");
  check(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", d16, "unindexed bytes");
  check(R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", d16.substr(0, 8), "non-negative");
  check(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})", d16.substr(0, 8), "more than the file holds");
  check(R"({"a": {"dtype": "F32", "shape": [2]}})", d16.substr(0, 8), "data_offsets");
  check(R"({"__metadata__": {"k": 3}})", "", "not a string");
  check(R"([1, 2])", "", "does not start with '{'");
  // A well-formed hand-made file loads (and an empty one too).
  write_bytes(p, make_file(R"({"a": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}})",
                           std::string("\x01\x00\x00\x00\xff\xff\xff\xff", 8)));
  CHECK(load_safetensors(p).tensors.at("a").to_vector<int32_t>() == std::vector<int32_t>{1, -1});
  write_bytes(p, make_file("{}", ""));
  CHECK(load_safetensors(p).tensors.empty());
}

namespace {
struct Net : Module {
  std::shared_ptr<Linear> fc;
  std::shared_ptr<BatchNorm1d> bn;
  Net(int64_t d, uint64_t seed) {
    fc = register_module("fc", std::make_shared<Linear>(d, 3, seed));
    bn = register_module("bn", std::make_shared<BatchNorm1d>(3));
  }
};
}  // namespace

TEST_CASE("checkpoint: modules and optimizer state round trip; mismatches are listed") {
  TempDir tmp("ckpt");
  std::string path = tmp.file("net.safetensors");
  Net a(4, 1);
  Tensor rm = a.bn->running_mean();
  rm.copy_(Tensor::from_vector<float>({1, 2, 3}, {3}));
  AdamW opt(a.named_parameters());
  for (const Tensor& p : a.parameters()) {
    Tensor q = p;
    q.set_grad(Tensor::full(p.shape(), 0.25, p.dtype()));
  }
  opt.step();
  save_checkpoint(path, a, {{"config", R"({"d": 4})"}, {"epoch", "2"}}, &opt);

  Net b(4, 99);
  AdamW opt_b(b.named_parameters());
  Tensor w_handle = b.fc->weight();
  auto meta = load_checkpoint(path, b, &opt_b);
  CHECK(meta.at("epoch") == "2");
  CHECK(meta.at("config") == R"({"d": 4})");
  CHECK(meta.at("format") == "larmor-checkpoint-1");
  CHECK(w_handle.same(b.fc->weight()));  // loaded in place
  for (auto& [name, t] : a.state_dict()) {
    INFO(name);
    CHECK(same_bytes(t, b.state_dict().at(name)));
  }
  for (size_t i = 0; i < opt.slots().size(); ++i) {
    CHECK(same_bytes(opt.slots()[i].m, opt_b.slots()[i].m));
    CHECK(same_bytes(opt.slots()[i].v, opt_b.slots()[i].v));
    CHECK(opt_b.slots()[i].step == 1);
  }
  // Inference load ignores the optimizer entries.
  Net c(4, 5);
  load_checkpoint(path, c);
  CHECK(same_bytes(c.fc->bias(), a.fc->bias()));

  // A different architecture: every problem is listed, and nothing is written.
  struct Other : Module {
    Other() {
      register_module("fc", std::make_shared<Linear>(5, 3, 1));  // weight (3, 5) vs (3, 4)
      register_parameter("extra", Tensor::zeros({2}));
    }
  } other;
  Tensor before = other.state_dict().at("fc.bias").clone();
  try {
    load_checkpoint(path, other);
    FAIL("no throw");
  } catch (const Error& e) {
    std::string m = e.what();
    INFO(m);
    CHECK(m.find(path) != std::string::npos);
    CHECK(m.find("missing from the file:\n  extra") != std::string::npos);
    CHECK(m.find("bn.running_mean") != std::string::npos);  // unexpected
    CHECK(m.find("fc.weight: file f32(3, 4), model f32(3, 5)") != std::string::npos);
  }
  CHECK(same_bytes(other.state_dict().at("fc.bias"), before));

  // Optimizer requested but absent from the file.
  std::string plain = tmp.file("plain.safetensors");
  save_checkpoint(plain, a);
  AdamW opt_c(c.named_parameters());
  CHECK_THROWS_AS(load_checkpoint(plain, c, &opt_c), Error);
}
