/* expect: wrong_answer
 * why: a blocked scan that scans each block of 1024 on its own and never adds the totals of the blocks
 * before it: the first block is right, every later one is off by the sum of everything before it. */
#include <stddef.h>

void prefix_sum(size_t n, const double *x, double *y) {
#pragma omp parallel for schedule(static)
    for (size_t start = 0; start < n; start += 1024) {
        size_t end = start + 1024 < n ? start + 1024 : n;
        double s = 0.0;
        for (size_t i = start; i < end; i++) {
            s += x[i];
            y[i] = s;
        }
    }
}
