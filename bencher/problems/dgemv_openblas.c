/* The vendor baseline of `dgemv`: OpenBLAS's DGEMV behind the candidate entry point.
 * Built only as a trusted kernel (linked with -lopenblas); candidates can never link
 * a library, and the symbol allowlist rejects any reference to BLAS. */
#include <cblas.h>

void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y) {
    cblas_dgemv(CblasRowMajor, CblasNoTrans, n, n, alpha, A, n, x, 1, beta, y, 1);
}
