/* techniques: simd_intrinsics, unrolling
 * why: four ymm partial sums, the loop stepping by 16 over x + i, x + i + 4, ... (manual
 *      unrolling that hides the add latency); a scalar tail.
 */
#include <immintrin.h>
#include <stddef.h>

double reduce_sum(size_t n, const double *x)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    __m256d s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_pd(s0, _mm256_loadu_pd(x + i));
        s1 = _mm256_add_pd(s1, _mm256_loadu_pd(x + i + 4));
        s2 = _mm256_add_pd(s2, _mm256_loadu_pd(x + i + 8));
        s3 = _mm256_add_pd(s3, _mm256_loadu_pd(x + i + 12));
    }
    __m256d s = _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3));
    double lanes[4];
    _mm256_storeu_pd(lanes, s);
    double total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < n; i++)
        total += x[i];
    return total;
}
