// safetensors reader/writer. The whole file is read into memory and checked before any tensor is
// built: the format is simple enough that every inconsistency can be named precisely.
#include "layers/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

namespace larmor {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeader = 100ull << 20;  // the reference implementation's limit (100 MB)

const char* st_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

// Half-precision storage: F32 tensors may be written as IEEE binary16 ("F16") or bfloat16 ("BF16") to
// halve a shipped model's size; they are read back as F32 (the engine computes in f32/f64 only).
uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                                     // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (absu >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (absu < 0x38800000u) {                                                // below 2^-14: subnormal or 0
    if (absu < 0x33000000u) return static_cast<uint16_t>(sign);             // below half the smallest subnormal
    const uint32_t mant = (absu & 0x7fffffu) | 0x800000u;
    const int shift = 126 - static_cast<int>(absu >> 23);  // value / 2^-24 = mant * 2^-shift, shift in [14, 24]
    const uint32_t dropped = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
    uint32_t r = mant >> shift;
    if (dropped > half || (dropped == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = ((absu >> 13) - (112u << 10));  // rebias exponent 127 -> 15, keep 10 mantissa bits
  const uint32_t dropped = absu & 0x1fffu;
  if (dropped > 0x1000u || (dropped == 0x1000u && (r & 1u))) ++r;  // may carry into the exponent: still right
  return static_cast<uint16_t>(sign | r);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) u = sign;
    else {  // subnormal: mant * 2^-24
      const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
      std::memcpy(&u, &v, 4);
      u |= sign;
    }
  } else if (exp == 31) u = sign | 0x7f800000u | (mant << 13);
  else u = sign | ((exp + 112u) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32") *out = DType::F32;
  else if (s == "F64") *out = DType::F64;
  else if (s == "I32") *out = DType::I32;
  else if (s == "I64") *out = DType::I64;
  else return false;
  return true;
}

[[noreturn]] void fail(const std::string& fn, const std::string& path, const std::string& msg) {
  throw Error(fn + ": '" + path + "': " + msg);
}

void write_all(int fd, const void* data, size_t n, const std::string& tmp) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("save_safetensors", tmp, std::string("write failed: ") + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

const char* stored_float_name(StoredFloat s) {
  switch (s) {
    case StoredFloat::F32: return "f32";
    case StoredFloat::F16: return "f16";
    case StoredFloat::BF16: return "bf16";
  }
  return "?";
}

StoredFloat parse_stored_float(const std::string& name) {
  if (name == "f32" || name == "F32") return StoredFloat::F32;
  if (name == "f16" || name == "F16") return StoredFloat::F16;
  if (name == "bf16" || name == "BF16") return StoredFloat::BF16;
  throw Error("unknown storage dtype '" + name + "' (f32, f16 or bf16)");
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata, StoredFloat f32_as) {
  // Header first: offsets follow the (sorted) map order.
  json header = json::object();
  std::vector<Tensor> host;        // tensors written as they are
  std::vector<std::string> halves;  // or, per tensor, its f16/bf16 bytes (empty: write host[i] as is)
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__") fail("save_safetensors", path, "invalid tensor name '" + name + "'");
    if (!t.defined()) fail("save_safetensors", path, "tensor '" + name + "' is undefined");
    Tensor h = t.to(Device::cpu());
    std::string half;
    std::string dtype = st_dtype(h.dtype());
    if (h.dtype() == DType::F32 && f32_as != StoredFloat::F32 && h.numel() > 0) {
      const float* v = h.data<float>();
      const int64_t n = h.numel();
      bool fits = true;
      if (f32_as == StoredFloat::F16)
        for (int64_t i = 0; i < n && fits; ++i) fits = !std::isfinite(v[i]) || std::fabs(v[i]) <= 65504.0f;
      if (fits) {  // a tensor outside the f16 range stays f32
        half.resize(static_cast<size_t>(n) * 2);
        for (int64_t i = 0; i < n; ++i) {
          const uint16_t b = f32_as == StoredFloat::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
          half[2 * i] = static_cast<char>(b & 0xff);
          half[2 * i + 1] = static_cast<char>(b >> 8);
        }
        dtype = f32_as == StoredFloat::F16 ? "F16" : "BF16";
      }
    }
    const uint64_t n = half.empty() ? h.nbytes() : half.size();
    header[name] = {{"dtype", dtype}, {"shape", h.shape()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    host.push_back(h);
    halves.push_back(std::move(half));
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  uint64_t hlen = text.size();

  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("save_safetensors", tmp, std::string("cannot create: ") + std::strerror(errno));
  try {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(hlen >> (8 * i));
    write_all(fd, len, 8, tmp);
    write_all(fd, text.data(), text.size(), tmp);
    for (size_t i = 0; i < host.size(); ++i)
      if (halves[i].empty()) write_all(fd, host[i].raw_data(), host[i].nbytes(), tmp);
      else write_all(fd, halves[i].data(), halves[i].size(), tmp);
    if (::fsync(fd) != 0) fail("save_safetensors", tmp, std::string("fsync failed: ") + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    fail("save_safetensors", tmp, std::string("close failed: ") + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("save_safetensors", path, std::string("rename from temporary file failed: ") + std::strerror(err));
  }
  // Make the rename itself durable.
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/') + 1);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

SafetensorsFile load_safetensors(const std::string& path) {
  const std::string fn = "load_safetensors";
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(fn, path, std::string("cannot open: ") + std::strerror(errno));
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(fn, path, "read error");
  const uint64_t size = bytes.size();
  if (size < 8) fail(fn, path, "truncated: " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (hlen > size - 8)
    fail(fn, path, "header length " + std::to_string(hlen) + " is larger than the file (" + std::to_string(size) +
                       " bytes): truncated or not a safetensors file");
  if (hlen > kMaxHeader) fail(fn, path, "header length " + std::to_string(hlen) + " exceeds the 100 MB limit");
  if (hlen < 2 || bytes[8] != '{') fail(fn, path, "header does not start with '{': not a safetensors file");

  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(hlen));
  } catch (const json::exception& e) {
    fail(fn, path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(fn, path, "header is not a JSON object");

  const uint64_t data_size = size - 8 - hlen;
  const char* data = bytes.data() + 8 + hlen;
  SafetensorsFile out;
  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  struct Entry {
    std::string name;
    Shape shape;
    DType dtype;
    int half = 0;  // 0: stored as dtype; 16: stored F16; 17: stored BF16 (both read into F32)
  };
  std::vector<Entry> metas;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) fail(fn, path, "__metadata__ is not an object");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string()) fail(fn, path, "__metadata__ value for '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      fail(fn, path, where + "entry needs dtype, shape and data_offsets");
    if (!e["dtype"].is_string()) fail(fn, path, where + "dtype is not a string");
    DType dt = DType::F32;
    std::string ds = e["dtype"].get<std::string>();
    const int half = ds == "F16" ? 16 : ds == "BF16" ? 17 : 0;
    if (!half && !parse_dtype(ds, &dt))
      fail(fn, path, where + "unsupported dtype '" + ds + "' (larmor reads F32, F64, I32, I64, and F16/BF16 as F32)");
    const json& js = e["shape"];
    if (!js.is_array()) fail(fn, path, where + "shape is not an array");
    Shape shape;
    // Element count saturated just above the data size, so absurd shapes cannot overflow.
    unsigned __int128 numel = 1;
    for (const json& d : js) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        fail(fn, path, where + "shape entries must be non-negative 63-bit integers, got " + js.dump());
      uint64_t v = d.get<uint64_t>();
      numel = std::min<unsigned __int128>(numel * v, static_cast<unsigned __int128>(data_size) + 1);
      shape.push_back(static_cast<int64_t>(v));
    }
    const json& jo = e["data_offsets"];
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      fail(fn, path, where + "data_offsets must be two non-negative integers");
    uint64_t b = jo[0].get<uint64_t>(), en = jo[1].get<uint64_t>();
    if (b > en) fail(fn, path, where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "] are reversed");
    if (en > data_size)
      fail(fn, path, where + "data_offsets end " + std::to_string(en) + " is past the end of the data section (" +
                         std::to_string(data_size) + " bytes): file truncated?");
    unsigned __int128 expect = numel * (half ? 2 : dtype_size(dt));
    if (en - b != expect)
      fail(fn, path, where + "data_offsets span " + std::to_string(en - b) + " bytes but " + ds + js.dump() + " needs " +
                         (numel > data_size ? std::string("more than the file holds") : std::to_string(static_cast<uint64_t>(expect))));
    spans.push_back({b, en, name});
    metas.push_back({name, shape, dt, half});
  }
  std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) {
    return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
  });
  uint64_t pos = 0;
  for (const Span& s : spans) {
    if (s.begin < pos) fail(fn, path, "tensor '" + s.name + "' overlaps the previous tensor in the data section");
    if (s.begin > pos) fail(fn, path, "unindexed bytes before tensor '" + s.name + "' in the data section");
    pos = s.end;
  }
  if (pos != data_size)
    fail(fn, path, "data section is " + std::to_string(data_size) + " bytes but the tensors cover " + std::to_string(pos));
  std::map<std::string, int> half_of;
  for (const Entry& m : metas) {
    out.tensors.emplace(m.name, Tensor::empty(m.shape, m.dtype));
    half_of[m.name] = m.half;
  }
  for (const Span& s : spans) {
    Tensor& t = out.tensors.at(s.name);
    if (s.end == s.begin) continue;
    const int half = half_of.at(s.name);
    if (!half) {
      std::memcpy(t.raw_data(), data + s.begin, s.end - s.begin);
      continue;
    }
    const auto* src = reinterpret_cast<const unsigned char*>(data + s.begin);
    float* dst = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      const uint16_t b = static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8));
      dst[i] = half == 16 ? f16_to_f32(b) : bf16_to_f32(b);
    }
  }
  return out;
}

}  // namespace larmor
