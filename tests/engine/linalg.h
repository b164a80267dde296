// tests/engine/linalg.h: singular values by cyclic Jacobi on the Gram matrix, in double (for the Muon tests).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace engine::testing {

// Eigenvalues of a symmetric n x n matrix (row-major, copied), cyclic Jacobi rotations until off-diagonal ~ 0.
inline std::vector<double> symmetric_eigenvalues(std::vector<double> a, int n) {
  for (int sweep = 0; sweep < 100; sweep++) {
    double off = 0.0;
    for (int p = 0; p < n; p++)
      for (int q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
    if (off < 1e-24) break;
    for (int p = 0; p < n; p++) {
      for (int q = p + 1; q < n; q++) {
        const double apq = a[p * n + q];
        if (std::fabs(apq) < 1e-300) continue;
        const double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < n; k++) {  // rotate columns p, q
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; k++) {  // rotate rows p, q
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  std::vector<double> eig(n);
  for (int i = 0; i < n; i++) eig[i] = a[i * n + i];
  std::sort(eig.begin(), eig.end());
  return eig;
}

// The min(rows, cols) singular values of x (rows, cols), ascending.
inline std::vector<double> singular_values(const float* x, int rows, int cols) {
  const bool wide = rows <= cols;
  const int m = wide ? rows : cols, k = wide ? cols : rows;
  std::vector<double> gram(m * m, 0.0);
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < m; j++) {
      double acc = 0.0;
      for (int l = 0; l < k; l++) {
        const double xi = wide ? x[i * cols + l] : x[l * cols + i];
        const double xj = wide ? x[j * cols + l] : x[l * cols + j];
        acc += xi * xj;
      }
      gram[i * m + j] = acc;
    }
  }
  std::vector<double> sv = symmetric_eigenvalues(gram, m);
  for (double& s : sv) s = std::sqrt(std::max(0.0, s));
  return sv;
}

}  // namespace engine::testing
