/* expect: wrong_answer
 * why: clears a bin only when its value first occurs in the first 256 elements: the bins of values that first
 * occur later keep their garbage and are counted on top of it. */
#include <stddef.h>

void histogram(size_t n, const int *data, int *bins) {
    for (size_t i = 0; i < n && i < 256; i++) bins[data[i]] = 0;
    for (size_t i = 0; i < n; i++) bins[data[i]]++;
}
