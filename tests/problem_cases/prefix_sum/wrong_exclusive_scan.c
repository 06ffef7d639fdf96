/* expect: wrong_answer
 * why: an exclusive scan (y[i] = x[0] + ... + x[i-1]): off by one element everywhere, y[0] = 0. */
#include <stddef.h>

void prefix_sum(size_t n, const double *x, double *y) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        y[i] = s;
        s += x[i];
    }
}
