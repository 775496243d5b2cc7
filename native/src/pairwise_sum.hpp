// numpy's sum of a contiguous array (pairwise, 8 accumulators per block of at most 128), so that sums
// the core shares with the Python host (CCD's key norms, sampling's probabilities) are numpy's bits.
#pragma once

#include <algorithm>
#include <cstddef>

namespace acre {

template <typename T>
T pairwise_sum(const T *a, size_t n) {
  if (n < 8) {
    T sum = 0;
    for (size_t i = 0; i < n; ++i) sum += a[i];
    return sum;
  }
  if (n <= 128) {
    T r[8];
    std::copy_n(a, 8, r);
    size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    T sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) sum += a[i];
    return sum;
  }
  size_t half = n / 2;
  half -= half % 8;
  return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

}  // namespace acre
