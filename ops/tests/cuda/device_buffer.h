// Device memory for the GPU tests: one cudaMalloc'd buffer, freed with the object. A failed
// allocation leaves get() null, which the launches then report.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

namespace ortsparse::testing {

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
