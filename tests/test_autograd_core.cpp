// The tape itself: accumulation, fan-out, no-grad, detach, and gradcheck catching a wrong gradient.
#include <doctest/doctest.h>

#include "autograd/autograd.h"
#include "engine/rng.h"
#include "kernels/ops.h"

using namespace larmor;

TEST_CASE("autograd: fan-out sums gradients and leaf grads accumulate across backward calls") {
  Tensor x = Tensor::from_vector<double>({1.0, 2.0, 3.0}, {3}).set_requires_grad(true);
  Tensor y = sum(add(mul(x, x), x));  // d/dx = 2x + 1
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3.0, 5.0, 7.0});
  sum(mul_scalar(x, 2.0)).backward();  // += 2
  CHECK(x.grad().to_vector<double>() == std::vector<double>{5.0, 7.0, 9.0});
}

TEST_CASE("autograd: no-grad guard and detach record nothing") {
  Tensor x = Tensor::from_vector<double>({1.0, 2.0}, {2}).set_requires_grad(true);
  {
    NoGradGuard ng;
    Tensor y = mul(x, x);
    CHECK_FALSE(y.requires_grad());
  }
  Tensor z = mul(x.detach(), x.detach());
  CHECK_FALSE(z.requires_grad());
  CHECK_THROWS_AS(z.backward(Tensor::ones({2}, DType::F64)), Error);
}

TEST_CASE("autograd: broadcasting gradients reduce to the input shape") {
  Rng rng(7);
  Tensor a = rng.uniform({2, 3, 4}, -1, 1, DType::F64);
  Tensor b = rng.uniform({3, 1}, -1, 1, DType::F64);
  auto f = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{div(mul(in[0], in[1]), add_scalar(square(in[1]), 1.0))}; };
  CHECK(gradcheck(f, {a, b}, {0, 1}) == "");
}

TEST_CASE("autograd: gradcheck reports a wrong gradient") {
  // max with a tie-free input is fine; a function whose output ignores the tape is caught.
  Tensor a = Tensor::from_vector<double>({0.3, -0.2, 0.9}, {3});
  auto wrong = [](const std::vector<Tensor>& in) {
    Tensor y = mul(in[0], in[0]);
    Tensor stop = in[0].detach();  // gradient of the second factor silently dropped
    return std::vector<Tensor>{mul(y, stop)};
  };
  CHECK(gradcheck(wrong, {a}, {0}) != "");
}

TEST_CASE("ops: shape errors name the op and the shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 3});
  try {
    add(a, b);
    FAIL("no throw");
  } catch (const Error& e) {
    std::string m = e.what();
    CHECK(m.find("Add") != std::string::npos);
    CHECK(m.find("(2, 3)") != std::string::npos);
    CHECK(m.find("(4, 3)") != std::string::npos);
  }
}
