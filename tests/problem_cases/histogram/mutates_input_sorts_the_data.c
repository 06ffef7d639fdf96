/* expect: wrong_answer
 * detail: modified its input data
 * why: a counting pass, then the data rewritten in sorted order (run-length scratch use): the bins are right,
 * the input is not what it was. */
#include <stddef.h>

void histogram(size_t n, const int *data, int *bins) {
    for (int b = 0; b < 256; b++) bins[b] = 0;
    for (size_t i = 0; i < n; i++) bins[data[i]]++;
    int *d = (int *)data;
    size_t at = 0;
    for (int b = 0; b < 256; b++)
        for (int k = 0; k < bins[b]; k++) d[at++] = b;
}
