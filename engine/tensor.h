// Tensor: a shape, a dtype and a view (element offset) into a shared Storage. Always row-major
// contiguous: reshape and slices along the leading axis are views; any other layout change (permute,
// transpose, slice on an inner axis) is an op that copies. Keeping every tensor contiguous keeps every
// kernel simple and is what llm.c does.
//
// The autograd fields live here (requires_grad, grad, grad_fn) so that any tensor can be a leaf or an
// op output; the tape itself (Node, backward) is in autograd/.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/storage.h"

namespace larmor {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "(2, 3, 4)"
int64_t shape_numel(const Shape& s);

struct Node;  // autograd/node.h

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::F32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;     // accumulated gradient of a leaf (same shape/dtype/device)
  std::shared_ptr<Node> grad_fn;        // the op that produced this tensor (null for leaves)
  int output_index = 0;                 // which output of grad_fn this is
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories --------------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu()) {
    return full(shape, 1.0, dtype, device);
  }
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::F32, Device device = Device::cpu()) {
    return full({}, value, dtype, device);
  }

  // ---- metadata ---------------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t axis) const;  // negative axes count from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage ? impl().storage->device() : Device::cpu(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  std::string str() const;  // "f32(2, 3)@cpu"

  // ---- data access (CPU tensors only for the typed accessors) ------------------------------------
  void* raw_data() const;  // device pointer at the view's offset
  template <typename T> T* data() const;
  template <typename T> std::vector<T> to_vector() const;  // copies to host; T must match dtype
  double item() const;                                     // one-element tensor, any dtype, any device

  // ---- views and copies ----------------------------------------------------------------------------
  Tensor view(const Shape& shape) const;               // no autograd; -1 allowed once
  Tensor narrow0(int64_t start, int64_t length) const;  // no autograd; leading-axis slice view
  Tensor clone() const;                                // deep copy, no autograd history
  Tensor to(Device device) const;                      // copy to device (or self if already there)
  Tensor to(DType dtype) const;                        // dtype conversion (copy), no autograd
  void copy_(const Tensor& src);                       // same shape/dtype; any devices
  void zero_();
  Tensor detach() const;  // shares storage, no grad history, requires_grad=false

  // ---- autograd ------------------------------------------------------------------------------------
  bool requires_grad() const { return impl_ && impl().requires_grad; }
  Tensor& set_requires_grad(bool r);
  Tensor grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  void backward() const;                    // scalar (one-element) tensors; defined in autograd/
  void backward(const Tensor& seed) const;  // any shape

  TensorImpl& impl() const {
    if (!impl_) throw Error("use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// ---- template definitions ---------------------------------------------------------------------
template <typename T>
T* Tensor::data() const {
  if (dtype() != dtype_of<T>::value)
    throw Error(std::string("Tensor::data: tensor is ") + dtype_name(dtype()) + ", accessed as " +
                dtype_name(dtype_of<T>::value));
  if (!device().is_cpu()) throw Error("Tensor::data: tensor lives on " + device().str() + "; call .to(cpu) first");
  return static_cast<T*>(raw_data());
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  if (static_cast<int64_t>(values.size()) != shape_numel(shape))
    throw Error("Tensor::from_vector: " + std::to_string(values.size()) + " values for shape " + shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>::value, Device::cpu());
  std::copy(values.begin(), values.end(), t.data<T>());
  return device.is_cpu() ? t : t.to(device);
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  if (dtype() != dtype_of<T>::value)
    throw Error(std::string("Tensor::to_vector: tensor is ") + dtype_name(dtype()) + ", read as " +
                dtype_name(dtype_of<T>::value));
  Tensor h = device().is_cpu() ? *this : to(Device::cpu());
  const T* p = h.data<T>();
  return std::vector<T>(p, p + h.numel());
}

// Grad mode: when disabled (inference, optimizer steps, inside backward) ops record no tape.
bool grad_enabled();
struct NoGradGuard {
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
 private:
  bool prev_;
};

}  // namespace larmor
