/* expect: wrong_answer
 * why: unrolled by 4 without the remainder loop: the last n % 4 elements of y (3 at n = 100003) are never
 * written and keep the garbage (NaN) they had. */
#include <stddef.h>

void prefix_sum(size_t n, const double *x, double *y) {
    double s = 0.0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        y[i] = s += x[i];
        y[i + 1] = s += x[i + 1];
        y[i + 2] = s += x[i + 2];
        y[i + 3] = s += x[i + 3];
    }
}
