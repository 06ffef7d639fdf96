/* The vendor baseline of `dgemm`: OpenBLAS's DGEMM behind the candidate entry point.
 * Built only as a trusted kernel (linked with -lopenblas); candidates can never link
 * a library, and the symbol allowlist rejects any reference to BLAS. */
#include <cblas.h>

void dgemm(int n, const double *A, const double *B, double *C) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, A, n, B, n, 0.0, C, n);
}
