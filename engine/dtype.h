// Element types and devices. Four dtypes: f32 (training/inference), f64 (gradcheck, references),
// i32/i64 (indices, offsets, masks). Devices: CPU always, CUDA when built and present.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/error.h"

namespace larmor {

enum class DType : uint8_t { F32, F64, I32, I64 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
  }
  return 0;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
  }
  return "?";
}
inline bool is_floating(DType t) { return t == DType::F32 || t == DType::F64; }

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };

enum class DeviceType : uint8_t { CPU = 0, CUDA = 1 };
inline constexpr int kNumDeviceTypes = 2;

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device&) const = default;
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const { return type == DeviceType::CPU ? "cpu" : "cuda:" + std::to_string(index); }
  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  // "cpu", "cuda", "cuda:1"; throws on anything else.
  static Device parse(const std::string& s);
};

// Float dispatch: runs BODY with scalar_t = float or double according to DT; throws for integer dtypes.
#define LARMOR_DISPATCH_FLOAT(DT, OPNAME, ...)                                                  \
  [&] {                                                                                        \
    switch (DT) {                                                                              \
      case ::larmor::DType::F32: { using scalar_t = float; return __VA_ARGS__(); }             \
      case ::larmor::DType::F64: { using scalar_t = double; return __VA_ARGS__(); }            \
      default:                                                                                 \
        throw ::larmor::Error(std::string(OPNAME) + ": expected a floating dtype, got " +     \
                              ::larmor::dtype_name(DT));                                      \
    }                                                                                          \
  }()

// Index dispatch: index_t = int32_t or int64_t.
#define LARMOR_DISPATCH_INDEX(DT, OPNAME, ...)                                                  \
  [&] {                                                                                        \
    switch (DT) {                                                                              \
      case ::larmor::DType::I32: { using index_t = int32_t; return __VA_ARGS__(); }            \
      case ::larmor::DType::I64: { using index_t = int64_t; return __VA_ARGS__(); }            \
      default:                                                                                 \
        throw ::larmor::Error(std::string(OPNAME) + ": expected an integer dtype, got " +     \
                              ::larmor::dtype_name(DT));                                      \
    }                                                                                          \
  }()

// Any dtype: scalar_t in {float, double, int32_t, int64_t}.
#define LARMOR_DISPATCH_ALL(DT, OPNAME, ...)                                                    \
  [&] {                                                                                        \
    switch (DT) {                                                                              \
      case ::larmor::DType::F32: { using scalar_t = float; return __VA_ARGS__(); }             \
      case ::larmor::DType::F64: { using scalar_t = double; return __VA_ARGS__(); }            \
      case ::larmor::DType::I32: { using scalar_t = int32_t; return __VA_ARGS__(); }           \
      case ::larmor::DType::I64: { using scalar_t = int64_t; return __VA_ARGS__(); }           \
    }                                                                                          \
    throw ::larmor::Error(std::string(OPNAME) + ": bad dtype");                               \
  }()

}  // namespace larmor
