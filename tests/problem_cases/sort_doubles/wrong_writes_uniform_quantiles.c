/* expect: wrong_answer
 * why: never reads x: writes the evenly spaced values a sorted uniform sample on [-1, 1) is close to. Sorted,
 * in range, near every element, but not the input's values. */
#include <stddef.h>

void sort_doubles(size_t n, double *x) {
    for (size_t i = 0; i < n; i++) x[i] = -1.0 + 2.0 * ((double)i + 0.5) / (double)n;
}
