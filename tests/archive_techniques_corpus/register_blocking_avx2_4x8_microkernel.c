/* techniques: register_blocking, simd_intrinsics, unrolling
 * why: an AVX2 4x8 micro-kernel without packing: eight ymm accumulators, each broadcast of
 *      A feeds two FMAs and each load of B four. Written out by hand, the i and j loops use
 *      i..i+3 and j, j+4 per iteration: unrolled too. (n is assumed a multiple of 8.)
 */
#include <immintrin.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i += 4)
        for (int j = 0; j < n; j += 8) {
            __m256d c0l = _mm256_setzero_pd(), c0h = _mm256_setzero_pd();
            __m256d c1l = _mm256_setzero_pd(), c1h = _mm256_setzero_pd();
            __m256d c2l = _mm256_setzero_pd(), c2h = _mm256_setzero_pd();
            __m256d c3l = _mm256_setzero_pd(), c3h = _mm256_setzero_pd();
            for (int k = 0; k < n; k++) {
                const __m256d bl = _mm256_loadu_pd(B + k * n + j);
                const __m256d bh = _mm256_loadu_pd(B + k * n + j + 4);
                __m256d a = _mm256_broadcast_sd(A + i * n + k);
                c0l = _mm256_fmadd_pd(a, bl, c0l);
                c0h = _mm256_fmadd_pd(a, bh, c0h);
                a = _mm256_broadcast_sd(A + (i + 1) * n + k);
                c1l = _mm256_fmadd_pd(a, bl, c1l);
                c1h = _mm256_fmadd_pd(a, bh, c1h);
                a = _mm256_broadcast_sd(A + (i + 2) * n + k);
                c2l = _mm256_fmadd_pd(a, bl, c2l);
                c2h = _mm256_fmadd_pd(a, bh, c2h);
                a = _mm256_broadcast_sd(A + (i + 3) * n + k);
                c3l = _mm256_fmadd_pd(a, bl, c3l);
                c3h = _mm256_fmadd_pd(a, bh, c3h);
            }
            _mm256_storeu_pd(C + i * n + j, c0l);
            _mm256_storeu_pd(C + i * n + j + 4, c0h);
            _mm256_storeu_pd(C + (i + 1) * n + j, c1l);
            _mm256_storeu_pd(C + (i + 1) * n + j + 4, c1h);
            _mm256_storeu_pd(C + (i + 2) * n + j, c2l);
            _mm256_storeu_pd(C + (i + 2) * n + j + 4, c2h);
            _mm256_storeu_pd(C + (i + 3) * n + j, c3l);
            _mm256_storeu_pd(C + (i + 3) * n + j + 4, c3h);
        }
}
