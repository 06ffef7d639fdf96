/* expect: wrong_answer
 * detail: modified its input x
 * why: scans x in place, then copies it to y: y is right, x is left holding the scan. */
#include <stddef.h>

void prefix_sum(size_t n, const double *x, double *y) {
    double *v = (double *)x;
    for (size_t i = 1; i < n; i++) v[i] += v[i - 1];
    for (size_t i = 0; i < n; i++) y[i] = v[i];
}
