/* The naive reference of `prefix_sum`: the running sum, left to right, one scalar accumulator, no threads,
 * no vectorisation hints. */
#include <stddef.h>

void prefix_sum(size_t n, const double *x, double *y) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        y[i] = s;
    }
}
