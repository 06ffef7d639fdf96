/* techniques: simd_pragma
 * near miss for: openmp
 * why: `#pragma omp declare simd` on a helper and `#pragma GCC ivdep` on a loop; the order
 *      is i-j-k (a dot product per element of C). `omp declare simd` creates no threads: not
 *      openmp.
 */
#pragma omp declare simd uniform(n)
static double mul(double a, double b, int n)
{
    (void)n;
    return a * b;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            #pragma GCC ivdep
            for (int k = 0; k < n; k++)
                sum += mul(A[i * n + k], B[k * n + j], n);
            C[i * n + j] = sum;
        }
}
