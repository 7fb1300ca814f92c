#include "engine/tensor.h"

#include <cstring>
#include <sstream>

namespace larmor {

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  if (s.size() == 1) o << ",";
  o << ")";
  return o.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw Error("negative dimension in shape " + shape_str(s));
    n *= d;
  }
  return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, Device::cpu());
  LARMOR_DISPATCH_ALL(dtype, "Tensor::full", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<scalar_t>(value);
  });
  return device.is_cpu() ? t : t.to(device);
}

int64_t Tensor::size(int64_t axis) const {
  int64_t n = dim();
  int64_t a = axis < 0 ? axis + n : axis;
  if (a < 0 || a >= n) throw Error("Tensor::size: axis " + std::to_string(axis) + " out of range for " + str());
  return shape()[a];
}

std::string Tensor::str() const {
  if (!impl_) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + "@" + device().str();
}

void* Tensor::raw_data() const {
  auto& s = impl().storage;
  if (!s || !s->data()) return nullptr;
  return static_cast<char*>(s->data()) + impl().offset * static_cast<int64_t>(dtype_size(dtype()));
}

double Tensor::item() const {
  if (numel() != 1) throw Error("Tensor::item: tensor " + str() + " has " + std::to_string(numel()) + " elements, expected 1");
  Tensor h = device().is_cpu() ? *this : to(Device::cpu());
  return LARMOR_DISPATCH_ALL(dtype(), "Tensor::item", [&]() -> double { return static_cast<double>(*h.data<scalar_t>()); });
}

Tensor Tensor::view(const Shape& new_shape) const {
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw Error("view: more than one -1 in " + shape_str(new_shape));
      infer = static_cast<int64_t>(i);
    } else {
      if (s[i] < 0) throw Error("view: negative dimension in " + shape_str(new_shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel() % known != 0)
      throw Error("view: cannot view " + str() + " as " + shape_str(new_shape));
    s[infer] = numel() / known;
  }
  if (shape_numel(s) != numel()) throw Error("view: cannot view " + str() + " as " + shape_str(new_shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = s;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::narrow0(int64_t start, int64_t length) const {
  if (dim() == 0) throw Error("narrow0: cannot slice a 0-d tensor");
  if (start < 0 || length < 0 || start + length > shape()[0])
    throw Error("narrow0: range [" + std::to_string(start) + ", " + std::to_string(start + length) +
                ") out of bounds for " + str());
  int64_t inner = numel() / std::max<int64_t>(shape()[0], 1);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset + start * inner;
  impl->shape = shape();
  impl->shape[0] = length;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

void Tensor::copy_(const Tensor& src) {
  if (src.shape() != shape() || src.dtype() != dtype())
    throw Error("copy_: source " + src.str() + " does not match destination " + str());
  size_t n = nbytes();
  if (n == 0) return;
  Device sd = src.device(), dd = device();
  if (sd.is_cpu() && dd.is_cpu()) {
    std::memmove(raw_data(), src.raw_data(), n);
  } else if (sd.is_cpu()) {
    allocator_for(dd.type).copy_from_host(raw_data(), src.raw_data(), n);
  } else if (dd.is_cpu()) {
    allocator_for(sd.type).copy_to_host(raw_data(), src.raw_data(), n);
  } else {
    allocator_for(dd.type).copy_device(raw_data(), src.raw_data(), n);
  }
}

void Tensor::zero_() {
  size_t n = nbytes();
  if (n) allocator_for(device().type).fill_zero(raw_data(), n);
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape(), dtype(), device());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor t = empty(shape(), dtype(), d);
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor h = device().is_cpu() ? *this : to(Device::cpu());
  Tensor out = empty(shape(), dt, Device::cpu());
  int64_t n = numel();
  LARMOR_DISPATCH_ALL(dtype(), "Tensor::to(dtype)", [&] {
    using src_t = scalar_t;
    const src_t* s = h.data<src_t>();
    LARMOR_DISPATCH_ALL(dt, "Tensor::to(dtype)", [&] {
      scalar_t* o = out.data<scalar_t>();
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<scalar_t>(s[i]);
    });
  });
  return device().is_cpu() ? out : out.to(device());
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

Tensor& Tensor::set_requires_grad(bool r) {
  if (r && !is_floating(dtype())) throw Error("set_requires_grad: only floating tensors can require grad, got " + str());
  if (r && !is_leaf()) throw Error("set_requires_grad: only leaf tensors can be marked; " + str() + " is an op output");
  impl().requires_grad = r;
  return *this;
}

namespace {
thread_local bool t_grad_enabled = true;
}
bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }

}  // namespace larmor
