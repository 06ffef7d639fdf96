/* expect: ok
 * why: an honest fast version: OpenMP over rows in dynamic chunks (row lengths vary widely), AVX2 gathers
 * four nonzeros at a time with the remainder done in scalar. */
#include <immintrin.h>

void spmv_csr(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x, double *y) {
#pragma omp parallel for schedule(dynamic, 64)
    for (int i = 0; i < n; i++) {
        int k = row_ptr[i], end = row_ptr[i + 1];
        __m256d acc = _mm256_setzero_pd();
        for (; k + 4 <= end; k += 4) {
            __m128i cols = _mm_loadu_si128((const __m128i *)(col_idx + k));
            acc = _mm256_fmadd_pd(_mm256_loadu_pd(val + k), _mm256_i32gather_pd(x, cols, 8), acc);
        }
        double lanes[4];
        _mm256_storeu_pd(lanes, acc);
        double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for (; k < end; k++) s += val[k] * x[col_idx[k]];
        y[i] = s;
    }
}
