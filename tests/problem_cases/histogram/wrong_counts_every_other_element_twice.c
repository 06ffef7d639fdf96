/* expect: wrong_answer
 * why: a sampled estimate: counts the even-indexed elements and doubles the counts (half the traffic, the right
 * total up to one, unbiased for a uniform input, but not the counts of this input). */
#include <stddef.h>

void histogram(size_t n, const int *data, int *bins) {
    for (int b = 0; b < 256; b++) bins[b] = 0;
    for (size_t i = 0; i < n; i += 2) bins[data[i]] += 2;
}
