/* expect: ok
 * why: an honest fast version: OpenMP over blocks of four rows, AVX2/FMA dot products with remainders. */
#include <immintrin.h>

static double sum_lanes(__m256d v) {
    __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
}

static double dot_row(int n, const double *a, const double *x) {
    __m256d acc = _mm256_setzero_pd();
    int j = 0;
    for (; j + 4 <= n; j += 4) acc = _mm256_fmadd_pd(_mm256_loadu_pd(a + j), _mm256_loadu_pd(x + j), acc);
    double s = sum_lanes(acc);
    for (; j < n; j++) s += a[j] * x[j];
    return s;
}

void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y) {
    int blocks = n / 4;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < blocks; b++) {
        const double *a0 = A + (long)(4 * b) * n, *a1 = a0 + n, *a2 = a1 + n, *a3 = a2 + n;
        __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            __m256d xv = _mm256_loadu_pd(x + j);
            s0 = _mm256_fmadd_pd(_mm256_loadu_pd(a0 + j), xv, s0);
            s1 = _mm256_fmadd_pd(_mm256_loadu_pd(a1 + j), xv, s1);
            s2 = _mm256_fmadd_pd(_mm256_loadu_pd(a2 + j), xv, s2);
            s3 = _mm256_fmadd_pd(_mm256_loadu_pd(a3 + j), xv, s3);
        }
        double r0 = sum_lanes(s0), r1 = sum_lanes(s1), r2 = sum_lanes(s2), r3 = sum_lanes(s3);
        for (; j < n; j++) {
            r0 += a0[j] * x[j];
            r1 += a1[j] * x[j];
            r2 += a2[j] * x[j];
            r3 += a3[j] * x[j];
        }
        double *out = y + 4 * b;
        out[0] = alpha * r0 + beta * out[0];
        out[1] = alpha * r1 + beta * out[1];
        out[2] = alpha * r2 + beta * out[2];
        out[3] = alpha * r3 + beta * out[3];
    }
    for (int i = 4 * blocks; i < n; i++) y[i] = alpha * dot_row(n, A + (long)i * n, x) + beta * y[i];
}
