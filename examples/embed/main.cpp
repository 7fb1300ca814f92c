// Embedding larmor in another program (found with find_package(larmor), linked as larmor::larmor).
//
//   embed                      a tiny engine check: y = tanh(x W), dy/dW by autograd
//   embed MODEL.safetensors SMILES [SOLVENT]
//                              13C and 1H shifts of one molecule with a trained shift model (needs the
//                              Open Babel part of larmor, larmor::chem)
#include <cstdio>
#include <exception>
#include <string>

#include "autograd/autograd.h"
#include "kernels/ops.h"
#ifdef LARMOR_WITH_OPENBABEL
#include "chem/ob_predict.h"
#endif

int main(int argc, char** argv) {
  try {
    if (argc == 1) {
      using namespace larmor;
      Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});  // (2, 3)
      Tensor w = Tensor::from_vector<double>({0.1, -0.2, 0.3, 0.4, -0.5, 0.6}, {3, 2});  // (3, 2)
      w.set_requires_grad(true);
      Tensor loss = sum(tanh(matmul(x, w)));
      run_backward(loss, Tensor::ones({}, DType::F64));
      std::printf("loss %.6f, dloss/dW[0,0] %.6f\n", loss.item(), w.grad().to_vector<double>()[0]);
      return 0;
    }
#ifdef LARMOR_WITH_OPENBABEL
    if (argc < 3) {
      std::fprintf(stderr, "usage: embed [MODEL.safetensors SMILES [SOLVENT]]\n");
      return 2;
    }
    larmor::ShiftPredictor predictor(argv[1]);
    const larmor::chem::Solvent solvent =
        argc > 3 ? larmor::chem::parse_solvent(argv[3]) : larmor::chem::Solvent::Unknown;
    const larmor::ShiftPrediction p = predictor.predict_smiles(argv[2], solvent);
    std::printf("%s", larmor::format_table(p).c_str());
    return 0;
#else
    std::fprintf(stderr, "embed: this larmor was installed without Open Babel; shift prediction is not available\n");
    return 2;
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "embed: %s\n", e.what());
    return 1;
  }
}
