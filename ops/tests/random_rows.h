// Random test data shared by the method and needle tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace ortsparse::testing {

// `rows` orthonormal rows of `width` doubles (Gram-Schmidt of normal vectors; rows <= width).
inline std::vector<double> OrthonormalRows(std::mt19937& rng, int64_t rows, int64_t width) {
  std::normal_distribution<double> normal;
  std::vector<double> basis(static_cast<size_t>(rows * width));
  for (int64_t i = 0; i < rows; ++i) {
    double* row = &basis[i * width];
    for (int64_t d = 0; d < width; ++d) row[d] = normal(rng);
    for (int64_t k = 0; k < i; ++k) {
      const double* previous = &basis[k * width];
      const double projection = std::inner_product(row, row + width, previous, 0.0);
      for (int64_t d = 0; d < width; ++d) row[d] -= projection * previous[d];
    }
    const double norm = std::sqrt(std::inner_product(row, row + width, row, 0.0));
    for (int64_t d = 0; d < width; ++d) row[d] /= norm;
  }
  return basis;
}

}  // namespace ortsparse::testing
