/* expect: ok
 * why: every allowed pragma family (omp simd, GCC unroll/ivdep/optimize/target,
 *      push_options/pop_options, unroll) and libm calls; the allowlist must not be
 *      stricter than the policy. The product is correct (fma is exact-rounded).
 */
#include <math.h>
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC optimize("O3")
#pragma GCC target("avx2,fma")
static double row_dot(int n, const double *a, const double *B, int j)
{
    double s = 0.0;
    #pragma GCC unroll 4
    for (int k = 0; k < n; k++)
        s = fma(a[k], B[k * n + j], s);
    return s;
}
#pragma GCC pop_options

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++) {
        #pragma GCC ivdep
        for (int j = 0; j < n; j++)
            C[i * n + j] = row_dot(n, A + i * n, B, j);
    }
    #pragma omp simd
    for (int t = 0; t < n * n; t++)
        C[t] = C[t] + 0.0 * fabs(sqrt(fabs(C[t])));
    #pragma unroll
    for (int t = 0; t < 1; t++)
        C[0] = fmax(C[0], C[0]);
}
