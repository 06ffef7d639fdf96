/* techniques: none
 * why: one scalar sum over x, in order.
 */
#include <stddef.h>

double reduce_sum(size_t n, const double *x)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s;
}
