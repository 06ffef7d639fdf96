/* techniques: none
 * why: the sequential inclusive scan: a running sum written to y at every step.
 */
#include <stddef.h>

void prefix_sum(size_t n, const double *x, double *y)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        y[i] = s;
    }
}
