/* techniques: simd_intrinsics, transpose
 * why: AVX-512 dot products (_mm512_fmadd_pd, _mm512_reduce_add_pd) over rows of A and of
 *      a transposed copy of B in a static buffer. (n is assumed a multiple of 8.)
 */
#include <immintrin.h>
#include <stdlib.h>

static double *bt;
static size_t bt_count;

void dgemm(int n, const double *A, const double *B, double *C)
{
    size_t count = (size_t)n * (size_t)n;
    if (count > bt_count) {
        free(bt);
        bt = aligned_alloc(64, count * sizeof(double));
        bt_count = bt ? count : 0;
        if (!bt)
            return;
    }
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            bt[(size_t)j * n + k] = B[(size_t)k * n + j];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            __m512d acc = _mm512_setzero_pd();
            for (int k = 0; k < n; k += 8)
                acc = _mm512_fmadd_pd(_mm512_loadu_pd(A + (size_t)i * n + k),
                                      _mm512_loadu_pd(bt + (size_t)j * n + k), acc);
            C[(size_t)i * n + j] = _mm512_reduce_add_pd(acc);
        }
}
