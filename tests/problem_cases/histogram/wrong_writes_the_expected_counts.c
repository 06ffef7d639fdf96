/* expect: wrong_answer
 * why: never reads the data: writes the counts a uniform input would have on average (n / 256, the remainder
 * spread over the first bins). The real counts scatter by about sqrt(n / 256) around them. */
#include <stddef.h>

void histogram(size_t n, const int *data, int *bins) {
    (void)data;
    for (size_t b = 0; b < 256; b++) bins[b] = (int)(n / 256 + (b < n % 256));
}
