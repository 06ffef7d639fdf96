/* techniques: simd_intrinsics, loop_order
 * why: i-k-j with AVX2: C's row is read, updated with an FMA and stored back four doubles
 *      at a time (a multiply-accumulate into memory through intrinsics), with a scalar tail.
 */
#include <immintrin.h>
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            const __m256d a = _mm256_set1_pd(A[i * n + k]);
            int j = 0;
            for (; j + 4 <= n; j += 4)
                _mm256_storeu_pd(&C[i * n + j],
                                 _mm256_fmadd_pd(a, _mm256_loadu_pd(&B[k * n + j]), _mm256_loadu_pd(&C[i * n + j])));
            for (; j < n; j++)
                C[i * n + j] += A[i * n + k] * B[k * n + j];
        }
}
