/* expect: wrong_answer
 * why: four accumulators without the remainder loop: the last n % 4 elements (3 at n = 100003) are never
 * added. One element of magnitude ~0.5 is far above the bound (1.1e-6 at that size). */
#include <stddef.h>

double reduce_sum(size_t n, const double *x) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    return (s0 + s1) + (s2 + s3);
}
