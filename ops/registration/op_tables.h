// One table of custom ops per execution provider; RegisterCustomOps adds every table's ops to the
// com.ortsparse domain.
#pragma once

#include <onnxruntime_c_api.h>

#include <vector>

namespace ortsparse::registration {

// Ops with kernels for CPUExecutionProvider (register_cpu.cc). Static objects: ONNX Runtime keeps
// pointers to them for as long as the process runs.
const std::vector<const OrtCustomOp*>& CpuOps();

// Ops with kernels for CUDAExecutionProvider (register_cuda.cc), in builds with ORTSPARSE_CUDA.
const std::vector<const OrtCustomOp*>& CudaOps();

}  // namespace ortsparse::registration
