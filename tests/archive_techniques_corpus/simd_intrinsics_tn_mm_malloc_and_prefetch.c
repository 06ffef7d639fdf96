/* techniques: prefetch, loop_order
 * near miss for: simd_intrinsics
 * why: near miss for simd_intrinsics: includes <immintrin.h> and calls _mm_malloc,
 *      _mm_free and _mm_prefetch, none of which is a vector operation; the arithmetic is
 *      scalar i-k-j, with B's next row prefetched.
 */
#include <immintrin.h>
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    double *row = _mm_malloc(sizeof(double) * (size_t)n, 64);
    if (!row)
        return;
    for (int i = 0; i < n; i++) {
        memset(row, 0, sizeof(double) * (size_t)n);
        for (int k = 0; k < n; k++) {
            if (k + 1 < n)
                _mm_prefetch((const char *)&B[(k + 1) * n], _MM_HINT_T0);
            const double a = A[i * n + k];
            for (int j = 0; j < n; j++)
                row[j] += a * B[k * n + j];
        }
        memcpy(C + i * n, row, sizeof(double) * (size_t)n);
    }
    _mm_free(row);
}
