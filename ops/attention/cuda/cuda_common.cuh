// Device-side helpers shared by the CUDA kernels: element conversions, asynchronous 16-byte copies,
// warp and block reductions, the "last block of a grid" handshake, and tensor-core fragments.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ortsparse/attention_params.h"
#include "ortsparse/data_type.h"
#include "ortsparse/status.h"

#define ORTSPARSE_CUDA_RETURN_IF_ERROR(expression)      \
  do {                                                  \
    const cudaError_t ortsparse_cuda_error_ = (expression); \
    if (ortsparse_cuda_error_ != cudaSuccess) return ortsparse_cuda_error_; \
  } while (false)

namespace ortsparse::cuda {

constexpr unsigned kFullWarp = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float NegativeInfinity() { return -__int_as_float(0x7f800000); }

template <typename T>
__host__ __device__ __forceinline__ constexpr T Smaller(T a, T b) {
  return a < b ? a : b;
}
template <typename T>
__host__ __device__ __forceinline__ constexpr T Larger(T a, T b) {
  return a < b ? b : a;
}

// Element conversions; every computation is fp32.
template <typename T>
struct Element;
template <>
struct Element<float> {
  static __device__ __forceinline__ float ToFloat(float x) { return x; }
  static __device__ __forceinline__ float FromFloat(float x) { return x; }
};
template <>
struct Element<__half> {
  static __device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
  static __device__ __forceinline__ __half FromFloat(float x) { return __float2half_rn(x); }
};
template <>
struct Element<__nv_bfloat16> {
  static __device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ __nv_bfloat16 FromFloat(float x) { return __float2bfloat16_rn(x); }
};

template <typename T>
__device__ __forceinline__ float ToFloat(T x) {
  return Element<T>::ToFloat(x);
}
template <typename T>
__device__ __forceinline__ T FromFloat(float x) {
  return Element<T>::FromFloat(x);
}

// Elements of one 16-byte chunk, the unit every row is read in.
template <typename T>
constexpr int kChunkElements = 16 / static_cast<int>(sizeof(T));

__device__ __forceinline__ void ChunkToFloat(const uint4& raw, float (&out)[4]) {
  out[0] = __uint_as_float(raw.x);
  out[1] = __uint_as_float(raw.y);
  out[2] = __uint_as_float(raw.z);
  out[3] = __uint_as_float(raw.w);
}
__device__ __forceinline__ void ChunkToFloat(const uint4& raw, float (&out)[8], __half) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __half2 pair;
    memcpy(&pair, &words[i], 4);
    const float2 f = __half22float2(pair);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void ChunkToFloat(const uint4& raw, float (&out)[8], __nv_bfloat16) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    // bf16 is the top half of an fp32: widening is a shift.
    out[2 * i] = __uint_as_float(words[i] << 16);
    out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
  }
}

template <typename T>
__device__ __forceinline__ void ChunkAsFloat(const uint4& raw, float (&out)[kChunkElements<T>]) {
  if constexpr (sizeof(T) == 4) {
    ChunkToFloat(raw, out);
  } else {
    ChunkToFloat(raw, out, T());
  }
}

// Asynchronous 16-byte copy global -> shared (zero-filled when !valid), and its group fences.
__device__ __forceinline__ void CopyAsync(void* shared, const void* global, bool valid) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(address), "l"(global), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void CommitCopies() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void WaitCopies() {
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
}

// Scores ranked as unsigned integers: larger score, larger key. NaN ranks as -inf and -0 as +0,
// as the CPU's float comparisons see them.
__device__ __forceinline__ uint32_t OrderedBits(float score) {
  if (score != score) score = NegativeInfinity();
  uint32_t bits = __float_as_uint(score);
  if (bits == 0x80000000u) bits = 0;
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

template <typename Op>
__device__ __forceinline__ float WarpReduce(float value, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value = op(value, __shfl_xor_sync(kFullWarp, value, offset));
  return value;
}

__device__ __forceinline__ int WarpInclusiveSum(int value) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int offset = 1; offset < 32; offset *= 2) {
    const int other = __shfl_up_sync(kFullWarp, value, offset);
    if (lane >= offset) value += other;
  }
  return value;
}

// Exclusive prefix sum over the block (blockDim.x a multiple of 32, at most 1024); `scratch` holds
// 33 ints. Returns this thread's exclusive prefix; *total receives the block's sum.
__device__ __forceinline__ int BlockExclusiveSum(int value, int* scratch, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int inclusive = WarpInclusiveSum(value);
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    const int warp_total = lane < warps ? scratch[lane] : 0;
    const int warp_inclusive = WarpInclusiveSum(warp_total);
    scratch[lane] = warp_inclusive - warp_total;
    if (lane == 31) scratch[32] = warp_inclusive;
  }
  __syncthreads();
  const int result = scratch[warp] + inclusive - value;
  *total = scratch[32];
  __syncthreads();
  return result;
}

// Called by every thread of every block of a group sharing `counter` after its results are
// written: true in the block that finishes last, which may then read all the others' results
// (through L2: __ldcg). `flag` is a shared int.
__device__ __forceinline__ bool FinishedLast(int* counter, int blocks, int* flag) {
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) *flag = atomicAdd(counter, 1) == blocks - 1;
  __syncthreads();
  const bool last = *flag != 0;
  if (last) __threadfence();
  return last;
}

// ---- tensor cores (16-bit types) -----------------------------------------------------------------

__device__ __forceinline__ uint32_t PackElements(__half lo, __half hi) {
  return static_cast<uint32_t>(__half_as_ushort(hi)) << 16 | __half_as_ushort(lo);
}
__device__ __forceinline__ uint32_t PackElements(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(hi)) << 16 | __bfloat16_as_ushort(lo);
}

// (x, y) as a 16-bit pair `high` and the pair of what rounding lost, `low`: high + low = (x, y) to
// about 2^-22 relative.
__device__ __forceinline__ void SplitPair(float x, float y, uint32_t* high, uint32_t* low, __half) {
  const __half2 h = __floats2half2_rn(x, y);
  const float2 back = __half22float2(h);
  const __half2 l = __floats2half2_rn(x - back.x, y - back.y);
  memcpy(high, &h, 4);
  memcpy(low, &l, 4);
}
__device__ __forceinline__ void SplitPair(float x, float y, uint32_t* high, uint32_t* low, __nv_bfloat16) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
  const float2 back = __bfloat1622float2(h);
  const __nv_bfloat162 l = __floats2bfloat162_rn(x - back.x, y - back.y);
  memcpy(high, &h, 4);
  memcpy(low, &l, 4);
}

// c += a·b, m16n8k16, row-major A (4 registers), column-major B (2), fp32 C.
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, __half) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, __nv_bfloat16) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 matrices of 16-bit elements from shared memory; lanes 8i..8i+7 give the rows of matrix i.
__device__ __forceinline__ void LoadMatrices(const void* row, uint32_t (&m)[4]) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(m[0]), "=r"(m[1]), "=r"(m[2]), "=r"(m[3])
               : "r"(address)
               : "memory");
}
__device__ __forceinline__ void LoadMatricesTransposed(const void* row, uint32_t (&m)[4]) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(m[0]), "=r"(m[1]), "=r"(m[2]), "=r"(m[3])
               : "r"(address)
               : "memory");
}

// Programmatic dependent launch (sm_90): the next kernel of the stream, launched with the attribute,
// may start once every block of this one has called AllowNextKernel; it calls
// WaitForPreviousKernel before touching anything this kernel writes or reads (which returns once
// this kernel has finished and its writes are visible). No-ops elsewhere.
__device__ __forceinline__ void WaitForPreviousKernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void AllowNextKernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The limits decode and prefill share: head size D = Dv in {64, 80, 96, 128}, whole GQA groups, no
// precomputed selection, a key capacity in [1, 2^30]. `op` prefixes the messages.
inline Status CheckHeadsAndCapacity(const char* op, const AttentionParams& a, int64_t key_capacity) {
  if (a.head_size != 64 && a.head_size != 80 && a.head_size != 96 && a.head_size != 128) {
    return ErrorStatus(op, "head size ", a.head_size, " is not one of 64, 80, 96, 128");
  }
  if (a.v_head_size != a.head_size) {
    return ErrorStatus(op, "value head size ", a.v_head_size, " differs from the key head size ", a.head_size);
  }
  if (a.kv_num_heads <= 0 || a.num_heads % a.kv_num_heads != 0) {
    return ErrorStatus(op, "num_heads (", a.num_heads, ") must be a multiple of kv_num_heads (", a.kv_num_heads, ")");
  }
  if (a.selection != nullptr) return ErrorStatus(op, "a precomputed key selection is not supported");
  if (key_capacity <= 0 || key_capacity > (int64_t{1} << 30)) {
    return ErrorStatus(op, "key capacity ", key_capacity, " is outside [1, 2^30]");
  }
  return Status::Ok();
}

}  // namespace ortsparse::cuda
