/* expect: wrong_answer
 * detail: modified its input x
 * why: a pairwise sum that folds the upper half of x onto the lower half, in place: the sum is right (within
 * the bound), but x is left overwritten. */
#include <stddef.h>

double reduce_sum(size_t n, const double *x) {
    double *v = (double *)x;
    while (n > 1) {
        size_t half = n / 2;
        for (size_t i = 0; i < half; i++) v[i] += v[n - half + i];
        n -= half;
    }
    return n ? v[0] : 0.0;
}
