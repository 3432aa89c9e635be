// libtorch's fused Adam / AdamW update (the kernel behind `torch.optim.AdamW(fused=True)`), which `tch` does not
// bind: one pass over each parameter, its gradient and its two moments, instead of one pass per elementwise op.
// Tensors arrive as the `at::Tensor*` handles that `tch` holds. Errors come back as a malloc'd message (NULL on
// success) that the caller frees with `bertmt_free_message`.

#include <ATen/core/Tensor.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace {

std::vector<at::Tensor> gather(at::Tensor **handles, int count) {
  std::vector<at::Tensor> tensors;
  tensors.reserve(count);
  for (int i = 0; i < count; ++i) {
    tensors.push_back(*handles[i]);
  }
  return tensors;
}

char *copy_message(const char *message) {
  char *copy = static_cast<char *>(std::malloc(std::strlen(message) + 1));
  if (copy != nullptr) {
    std::strcpy(copy, message);
  }
  return copy;
}

}  // namespace

extern "C" {

// One update of `count` parameters that share a learning rate and weight decay. `decoupled` selects AdamW (decay
// applied to the weights) over Adam (decay added to the gradient). `step` is a float scalar tensor holding the
// number of this step (1 for the first), used for bias correction; it is read, not changed.
char *bertmt_fused_adam(int decoupled, at::Tensor **params, at::Tensor **grads, at::Tensor **exp_avgs,
                        at::Tensor **exp_avg_sqs, at::Tensor *step, int count, double lr, double beta1, double beta2,
                        double weight_decay, double eps) {
  try {
    std::vector<at::Tensor> p = gather(params, count);
    std::vector<at::Tensor> g = gather(grads, count);
    std::vector<at::Tensor> m = gather(exp_avgs, count);
    std::vector<at::Tensor> v = gather(exp_avg_sqs, count);
    std::vector<at::Tensor> steps(count, *step);
    std::vector<at::Tensor> no_max;
    if (decoupled != 0) {
      at::_fused_adamw_(p, g, m, v, no_max, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    } else {
      at::_fused_adam_(p, g, m, v, no_max, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    }
    return nullptr;
  } catch (const std::exception &error) {
    return copy_message(error.what());
  } catch (...) {
    return copy_message("unknown C++ exception in the fused Adam update");
  }
}

void bertmt_free_message(char *message) { std::free(message); }

}  // extern "C"
