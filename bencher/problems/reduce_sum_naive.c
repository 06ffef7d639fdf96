/* The naive reference of `reduce_sum`: one scalar accumulator, left to right, no threads, no vectorisation
 * hints (gcc keeps the order of the additions without -ffast-math, so one add at a time). */
#include <stddef.h>

double reduce_sum(size_t n, const double *x) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}
