/* expect: wrong_answer
 * why: sums |x[i]| instead of x[i]: every element read, the right shape of loop, a result far off. */
#include <math.h>
#include <stddef.h>

double reduce_sum(size_t n, const double *x) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += fabs(x[i]);
    return s;
}
