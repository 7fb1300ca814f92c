// The CUDA runtime seen from the engine: device detection that never crashes on a machine without a
// GPU or driver (any CUDA error there means "no GPU", ENGINE.md C5), and the device allocator.
// Without a CUDA build these report no device.
#pragma once
#include <string>

#include "engine/storage.h"

namespace larmor {

int cuda_device_count();      // 0 without a CUDA build, a driver, or a GPU; never throws
bool cuda_available();        // cuda_device_count() > 0
std::string cuda_device_name(int index = 0);  // "" when unavailable
Allocator* cuda_allocator();  // the caching device allocator, or nullptr when unavailable
// Throws a larmor::Error naming `what` if the last CUDA call or launch failed (no-op without CUDA).
void cuda_check_last(const char* what);
void cuda_synchronize();

}  // namespace larmor
