/* expect: ok
 * why: an honest fast sum: OpenMP threads and SIMD lanes each keep partial sums, added in another order than
 * left to right; the harness's bound admits every order. */
#include <stddef.h>

double reduce_sum(size_t n, const double *x) {
    double s = 0.0;
#pragma omp parallel for simd reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}
