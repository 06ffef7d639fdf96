/* The calibration kernel: a fixed, cache-blocked DGEMM in plain C (no intrinsics, no OpenMP).
 * The bencher re-measures it periodically through its own pipeline; its GFLOPS travels with every
 * result, so a node that drifts (thermal throttling, a noisy neighbour) shows in the data. Never
 * change it: figures are only comparable while the kernel stays the same. */
#include <string.h>

#define BLOCK 64

void dgemm(int n, const double *A, const double *B, double *C) {
    memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int ii = 0; ii < n; ii += BLOCK)
        for (int kk = 0; kk < n; kk += BLOCK)
            for (int jj = 0; jj < n; jj += BLOCK) {
                int imax = ii + BLOCK < n ? ii + BLOCK : n;
                int kmax = kk + BLOCK < n ? kk + BLOCK : n;
                int jmax = jj + BLOCK < n ? jj + BLOCK : n;
                for (int i = ii; i < imax; i++)
                    for (int k = kk; k < kmax; k++) {
                        double a = A[i * n + k];
                        for (int j = jj; j < jmax; j++) C[i * n + j] += a * B[k * n + j];
                    }
            }
}
