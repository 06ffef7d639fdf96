/* techniques: simd_intrinsics
 * why: four elements per step scanned inside a ymm register (two shift-and-add steps with
 *      permutes and blends), plus the running total broadcast from the last lane.
 */
#include <immintrin.h>
#include <stddef.h>

void prefix_sum(size_t n, const double *x, double *y)
{
    const __m256d zero = _mm256_setzero_pd();
    __m256d carry = zero;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_loadu_pd(x + i);
        __m256d t = _mm256_blend_pd(_mm256_permute4x64_pd(v, 0x90), zero, 0x1);
        v = _mm256_add_pd(v, t);
        t = _mm256_blend_pd(_mm256_permute4x64_pd(v, 0x40), zero, 0x3);
        v = _mm256_add_pd(_mm256_add_pd(v, t), carry);
        _mm256_storeu_pd(y + i, v);
        carry = _mm256_permute4x64_pd(v, 0xff);
    }
    double s = _mm256_cvtsd_f64(carry);
    for (; i < n; i++) {
        s += x[i];
        y[i] = s;
    }
}
