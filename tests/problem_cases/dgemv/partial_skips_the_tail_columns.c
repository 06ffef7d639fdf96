/* expect: wrong_answer
 * why: an AVX2 dot product four columns at a time without its remainder loop: the last n % 4 terms of
 * every row are missing (n = 127). */
#include <immintrin.h>

void dgemv(int n, double alpha, const double *A, const double *x, double beta, double *y) {
    for (int i = 0; i < n; i++) {
        __m256d acc = _mm256_setzero_pd();
        for (int j = 0; j + 4 <= n; j += 4)
            acc = _mm256_fmadd_pd(_mm256_loadu_pd(A + (long)i * n + j), _mm256_loadu_pd(x + j), acc);
        double lanes[4];
        _mm256_storeu_pd(lanes, acc);
        y[i] = alpha * (lanes[0] + lanes[1] + lanes[2] + lanes[3]) + beta * y[i];
    }
}
