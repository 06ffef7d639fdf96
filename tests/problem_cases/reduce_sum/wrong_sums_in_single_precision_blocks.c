/* expect: wrong_answer
 * size: default
 * why: found by a red-team review: every x[i] rounded to float and summed in float in blocks of 64 per lane,
 *      the block totals in double. Under the rigorous any-order bound, (n - 1) eps sum |x|, 0.044 at the
 *      default size, its error (about 1e-3) passed; the bound is now sqrt(n) eps sum |x|. */
#include <stddef.h>

double reduce_sum(size_t n, const double *x) {
    double total = 0.0;
    size_t i = 0;
    for (; i + 512 <= n; i += 512) {
        float acc[8] = {0};
        for (size_t k = 0; k < 512; k += 8)
            for (int l = 0; l < 8; l++) acc[l] += (float)x[i + k + (size_t)l];
        float t = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        total += (double)t;
    }
    float tail = 0.0f;
    for (; i < n; i++) tail += (float)x[i];
    return total + (double)tail;
}
