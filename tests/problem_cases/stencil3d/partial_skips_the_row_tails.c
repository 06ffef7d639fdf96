/* expect: wrong_answer
 * why: the interior of each row is swept four points at a time with AVX2 and no remainder loop: the last
 * (n - 2) % 4 interior points of every row are never written (n = 31). */
#include <immintrin.h>

void stencil3d(int n, const double *in, double *out) {
    long plane = (long)n * n;
    const __m256d centre = _mm256_set1_pd(0.4), neighbour = _mm256_set1_pd(0.1);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            long row = i * plane + (long)j * n;
            if (i == 0 || j == 0 || i == n - 1 || j == n - 1) {
                for (int k = 0; k < n; k++) out[row + k] = in[row + k];
                continue;
            }
            out[row] = in[row];
            out[row + n - 1] = in[row + n - 1];
            for (int k = 1; k + 4 <= n - 1; k += 4) {
                const double *c = in + row + k;
                __m256d sum = _mm256_add_pd(_mm256_loadu_pd(c - plane), _mm256_loadu_pd(c + plane));
                sum = _mm256_add_pd(sum, _mm256_add_pd(_mm256_loadu_pd(c - n), _mm256_loadu_pd(c + n)));
                sum = _mm256_add_pd(sum, _mm256_add_pd(_mm256_loadu_pd(c - 1), _mm256_loadu_pd(c + 1)));
                __m256d result = _mm256_fmadd_pd(centre, _mm256_loadu_pd(c), _mm256_mul_pd(neighbour, sum));
                _mm256_storeu_pd(out + row + k, result);
            }
        }
}
