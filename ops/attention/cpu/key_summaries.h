// What the methods with state remember of each key, as functions of one fp32 row. The state update
// applies them to keys, the selection to queries (loki and hash summarise both the same way).
#pragma once

#include <cstdint>
#include <limits>

#include "attention/cpu/element.h"
#include "attention/cpu/vector_math.h"

namespace ortsparse::cpu {

// loki: out[i] = basis[i, :] · x for the first `rank` principal components (rows of the basis).
ORTSPARSE_ALWAYS_INLINE void ProjectOntoComponents(const float* basis, int64_t rank, int64_t width, const float* x,
                                                   float* out) {
  for (int64_t i = 0; i < rank; ++i) out[i] = Dot(basis + i * width, x, width);
}

// saap: the centroid of largest cosine similarity, the first one on ties. Centroids have unit norm,
// so it is the largest dot product.
ORTSPARSE_ALWAYS_INLINE int32_t NearestCentroid(const float* centroids, int64_t count, int64_t width, const float* x) {
  int32_t nearest = 0;
  float best = -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < count; ++c) {
    const float similarity = Dot(centroids + c * width, x, width);
    if (similarity > best) {
      best = similarity;
      nearest = static_cast<int32_t>(c);
    }
  }
  return nearest;
}

// hash: bucket(x) = argmax([x·W, −x·W]) for one round's projections W [width, half], the first
// bucket on ties. `products` is scratch for `half` floats.
ORTSPARSE_ALWAYS_INLINE int32_t HashBucket(const float* projections, int64_t width, int64_t half, const float* x,
                                           float* products) {
  for (int64_t i = 0; i < half; ++i) products[i] = 0.0f;
  for (int64_t d = 0; d < width; ++d) {
    const float* column = projections + d * half;
    for (int64_t i = 0; i < half; ++i) products[i] += x[d] * column[i];
  }
  int32_t bucket = 0;
  float best = products[0];
  for (int64_t i = 1; i < half; ++i) {
    if (products[i] > best) {
      best = products[i];
      bucket = static_cast<int32_t>(i);
    }
  }
  for (int64_t i = 0; i < half; ++i) {
    if (-products[i] > best) {
      best = -products[i];
      bucket = static_cast<int32_t>(half + i);
    }
  }
  return bucket;
}

// hyper: code(x) = Σ_i [x·W[:, i] > 0]·2^i over the `bits` hyperplanes, here the rows of
// `hyperplanes` [bits, width]. `products` is scratch for `bits` floats.
ORTSPARSE_ALWAYS_INLINE uint32_t HyperCode(const float* hyperplanes, int64_t bits, int64_t width, const float* x,
                                           float* products) {
  DotRows(x, hyperplanes, width, bits, width, products);
  uint32_t code = 0;
  for (int64_t i = 0; i < bits; ++i) code |= (products[i] > 0.0f ? 1u : 0u) << i;  // NaN: 0
  return code;
}

// hyper: the sortLSH rank of a code, its Gray-code decoding, so that codes adjacent in rank differ
// in one bit (one hyperplane).
inline uint32_t GrayRank(uint32_t code) {
  uint32_t rank = code;
  for (uint32_t shifted = code >> 1; shifted != 0; shifted >>= 1) rank ^= shifted;
  return rank;
}

}  // namespace ortsparse::cpu
