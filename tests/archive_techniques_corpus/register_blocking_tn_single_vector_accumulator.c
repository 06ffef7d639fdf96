/* techniques: simd_intrinsics
 * near miss for: register_blocking, unrolling
 * why: near miss for register_blocking (and unrolling): one ymm accumulator per 4-wide
 *      strip of C, so nothing loaded is reused across accumulators; the j loop steps by the
 *      vector width and touches one vector per iteration. (n is assumed a multiple of 4.)
 */
#include <immintrin.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j += 4) {
            __m256d acc = _mm256_setzero_pd();
            for (int k = 0; k < n; k++)
                acc = _mm256_fmadd_pd(_mm256_set1_pd(A[i * n + k]), _mm256_loadu_pd(&B[k * n + j]), acc);
            _mm256_storeu_pd(&C[i * n + j], acc);
        }
}
