// Element types as the kernels and the validation layer see them, without ONNX Runtime's enums.
#pragma once

#include <cstdint>

namespace ortsparse {

// Attention storage is fp32 or fp16 (and bf16 for the CUDA kernels; the CPU op rejects it); the
// other entries describe the remaining inputs (boolean masks, int32 sequence lengths, int64
// positions) so the validation layer can name them in errors.
enum class DataType : uint8_t { kFloat32, kFloat16, kBFloat16, kBool, kInt32, kInt64, kOther };

constexpr const char* DataTypeName(DataType type) {
  switch (type) {
    case DataType::kFloat32: return "float32";
    case DataType::kFloat16: return "float16";
    case DataType::kBFloat16: return "bfloat16";
    case DataType::kBool: return "bool";
    case DataType::kInt32: return "int32";
    case DataType::kInt64: return "int64";
    case DataType::kOther: break;
  }
  return "an unsupported type";
}

constexpr int64_t DataTypeSize(DataType type) {
  switch (type) {
    case DataType::kFloat32: return 4;
    case DataType::kFloat16: return 2;
    case DataType::kBFloat16: return 2;
    case DataType::kBool: return 1;
    case DataType::kInt32: return 4;
    case DataType::kInt64: return 8;
    case DataType::kOther: break;
  }
  return 0;
}

}  // namespace ortsparse
