// What the GPU tests share: the storage types' bytes on the host (fp32, fp16, bf16), and device
// memory (one cudaMalloc'd buffer, freed with the object; a failed allocation leaves get() null,
// which the launches then report).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ortsparse/data_type.h"
#include "ortsparse/float16.h"

namespace ortsparse::testing {

// ---- storage types on the host -----------------------------------------------------------------

inline uint16_t FloatToBfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}
inline float Bfloat16ToFloat(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float result;
  std::memcpy(&result, &bits, 4);
  return result;
}

inline float RoundTo(DataType type, float value) {
  switch (type) {
    case DataType::kFloat16: return HalfToFloat(FloatToHalf(value));
    case DataType::kBFloat16: return Bfloat16ToFloat(FloatToBfloat16(value));
    default: return value;
  }
}

// fp32 values (already representable) as the bytes of `type`.
inline std::vector<unsigned char> Encode(DataType type, const std::vector<float>& values) {
  const size_t element = static_cast<size_t>(DataTypeSize(type));
  std::vector<unsigned char> bytes(values.size() * element);
  for (size_t i = 0; i < values.size(); ++i) {
    if (type == DataType::kFloat16) {
      const Float16 h = FloatToHalf(values[i]);
      std::memcpy(&bytes[2 * i], &h, 2);
    } else if (type == DataType::kBFloat16) {
      const uint16_t h = FloatToBfloat16(values[i]);
      std::memcpy(&bytes[2 * i], &h, 2);
    } else {
      std::memcpy(&bytes[4 * i], &values[i], 4);
    }
  }
  return bytes;
}

inline std::vector<float> Decode(DataType type, const std::vector<unsigned char>& bytes) {
  const size_t element = static_cast<size_t>(DataTypeSize(type));
  std::vector<float> values(bytes.size() / element);
  for (size_t i = 0; i < values.size(); ++i) {
    if (type == DataType::kFloat16) {
      Float16 h;
      std::memcpy(&h, &bytes[2 * i], 2);
      values[i] = HalfToFloat(h);
    } else if (type == DataType::kBFloat16) {
      uint16_t h;
      std::memcpy(&h, &bytes[2 * i], 2);
      values[i] = Bfloat16ToFloat(h);
    } else {
      std::memcpy(&values[i], &bytes[4 * i], 4);
    }
  }
  return values;
}

// ---- device memory -----------------------------------------------------------------------------


class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { Allocate(bytes); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (data_ != nullptr) cudaFree(data_);
  }
  void Allocate(size_t bytes) {
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    bytes_ = bytes;
    if (bytes > 0 && cudaMalloc(&data_, bytes) != cudaSuccess) data_ = nullptr;
  }
  template <typename T>
  void Upload(const std::vector<T>& host) {
    Allocate(host.size() * sizeof(T));
    if (!host.empty()) cudaMemcpy(data_, host.data(), bytes_, cudaMemcpyHostToDevice);
  }
  template <typename T>
  std::vector<T> Download() const {
    std::vector<T> host(bytes_ / sizeof(T));
    if (!host.empty()) cudaMemcpy(host.data(), data_, bytes_, cudaMemcpyDeviceToHost);
    return host;
  }
  void* get() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace ortsparse::testing
