/* expect: wrong_answer
 * why: reads half the input and doubles it: an estimate with the right mean (zero) and half the traffic. */
#include <stddef.h>

double reduce_sum(size_t n, const double *x) {
    double s = 0.0;
    for (size_t i = 0; i < n / 2; i++) s += x[i];
    return 2.0 * s;
}
