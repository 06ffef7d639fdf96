/* techniques: simd_intrinsics, register_blocking, unrolling
 * why: four rows at a time (the i loop steps by 4 and reads rows i .. i + 3): four ymm
 *      accumulators share each load of x; the leftover rows and columns are done in scalar.
 */
#include <immintrin.h>

static double hsum(__m256d v)
{
    __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
    lo = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const double *a0 = A + (long)(i + 0) * n, *a1 = A + (long)(i + 1) * n;
        const double *a2 = A + (long)(i + 2) * n, *a3 = A + (long)(i + 3) * n;
        __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
        __m256d s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            __m256d xv = _mm256_loadu_pd(x + j);
            s0 = _mm256_fmadd_pd(_mm256_loadu_pd(a0 + j), xv, s0);
            s1 = _mm256_fmadd_pd(_mm256_loadu_pd(a1 + j), xv, s1);
            s2 = _mm256_fmadd_pd(_mm256_loadu_pd(a2 + j), xv, s2);
            s3 = _mm256_fmadd_pd(_mm256_loadu_pd(a3 + j), xv, s3);
        }
        double t0 = hsum(s0), t1 = hsum(s1), t2 = hsum(s2), t3 = hsum(s3);
        for (; j < n; j++) {
            t0 += a0[j] * x[j];
            t1 += a1[j] * x[j];
            t2 += a2[j] * x[j];
            t3 += a3[j] * x[j];
        }
        y[i + 0] = alpha * t0 + beta * y[i + 0];
        y[i + 1] = alpha * t1 + beta * y[i + 1];
        y[i + 2] = alpha * t2 + beta * y[i + 2];
        y[i + 3] = alpha * t3 + beta * y[i + 3];
    }
    for (; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < n; j++)
            s += A[(long)i * n + j] * x[j];
        y[i] = alpha * s + beta * y[i];
    }
}
