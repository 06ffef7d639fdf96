/* expect: wrong_answer
 * why: unrolled by 8 without the remainder loop: the last n % 8 elements (3 at n = 100003) are never counted. */
#include <stddef.h>

void histogram(size_t n, const int *data, int *bins) {
    for (int b = 0; b < 256; b++) bins[b] = 0;
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (size_t k = 0; k < 8; k++) bins[data[i + k]]++;
}
