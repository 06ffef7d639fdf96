/* expect: wrong_answer
 * why: counts every element but adds to whatever the bins held before the call (random bytes here). */
#include <stddef.h>

void histogram(size_t n, const int *data, int *bins) {
    for (size_t i = 0; i < n; i++) bins[data[i]]++;
}
