/* expect: wrong_answer
 * why: sorts, then keeps one copy of each value and pads the end with the largest: right for an input without
 * duplicates, wrong for this one (one position in eight repeats another's value). */
#include <stddef.h>
#include <stdlib.h>

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void sort_doubles(size_t n, double *x) {
    qsort(x, n, sizeof(double), ascending);
    size_t kept = 1;
    for (size_t i = 1; i < n; i++)
        if (x[i] != x[kept - 1]) x[kept++] = x[i];
    for (size_t i = kept; i < n; i++) x[i] = x[kept - 1];
}
