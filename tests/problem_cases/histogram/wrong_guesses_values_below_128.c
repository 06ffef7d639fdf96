/* expect: wrong_answer
 * why: guesses the data use only half the range and counts into 128 bins with a masked index (a smaller table):
 * the values from 128 up land in the bin 128 below theirs, and bins 128..255 are left at 0. */
#include <stddef.h>

void histogram(size_t n, const int *data, int *bins) {
    int small[128] = {0};
    for (size_t i = 0; i < n; i++) small[data[i] & 127]++;
    for (int b = 0; b < 256; b++) bins[b] = b < 128 ? small[b] : 0;
}
