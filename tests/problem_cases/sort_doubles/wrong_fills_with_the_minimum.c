/* expect: wrong_answer
 * why: one pass for the minimum, written everywhere: sorted (non-decreasing) output, not a permutation. */
#include <stddef.h>

void sort_doubles(size_t n, double *x) {
    double least = x[0];
    for (size_t i = 1; i < n; i++) least = x[i] < least ? x[i] : least;
    for (size_t i = 0; i < n; i++) x[i] = least;
}
