// CPU-only build: no CUDA device exists.
#include "engine/cuda_runtime.h"

namespace larmor {
int cuda_device_count() { return 0; }
bool cuda_available() { return false; }
std::string cuda_device_name(int) { return ""; }
Allocator* cuda_allocator() { return nullptr; }
void cuda_check_last(const char*) {}
void cuda_synchronize() {}
}  // namespace larmor
