/* expect: wrong_answer
 * why: an AVX2 gather four nonzeros at a time without its remainder loop: the last length % 4 terms of each
 * row are missing, and rows shorter than four come out 0. */
#include <immintrin.h>

void spmv_csr(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x, double *y) {
    for (int i = 0; i < n; i++) {
        __m256d acc = _mm256_setzero_pd();
        for (int k = row_ptr[i]; k + 4 <= row_ptr[i + 1]; k += 4) {
            __m128i cols = _mm_loadu_si128((const __m128i *)(col_idx + k));
            acc = _mm256_fmadd_pd(_mm256_loadu_pd(val + k), _mm256_i32gather_pd(x, cols, 8), acc);
        }
        double lanes[4];
        _mm256_storeu_pd(lanes, acc);
        y[i] = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    }
}
