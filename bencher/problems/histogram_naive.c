/* The naive reference of `histogram`: clear the 256 bins, then one increment per element, no threads. */
#include <stddef.h>

void histogram(size_t n, const int *data, int *bins) {
    for (int b = 0; b < 256; b++) bins[b] = 0;
    for (size_t i = 0; i < n; i++) bins[data[i]]++;
}
