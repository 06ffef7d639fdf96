/* techniques: simd_intrinsics, unrolling
 * why: 4 x 4 blocks transposed in registers (unpack, then swap 128-bit halves): the row
 *      loop steps by 4 and loads rows i .. i + 3; edges done in scalar.
 */
#include <immintrin.h>

void transpose(int n, const double *A, double *B)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            __m256d r0 = _mm256_loadu_pd(A + (i + 0) * n + j);
            __m256d r1 = _mm256_loadu_pd(A + (i + 1) * n + j);
            __m256d r2 = _mm256_loadu_pd(A + (i + 2) * n + j);
            __m256d r3 = _mm256_loadu_pd(A + (i + 3) * n + j);
            __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            _mm256_storeu_pd(B + (j + 0) * n + i, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(B + (j + 1) * n + i, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(B + (j + 2) * n + i, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(B + (j + 3) * n + i, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
        for (; j < n; j++)
            for (int r = i; r < i + 4; r++)
                B[j * n + r] = A[r * n + j];
    }
    for (; i < n; i++)
        for (int j = 0; j < n; j++)
            B[j * n + i] = A[i * n + j];
}
