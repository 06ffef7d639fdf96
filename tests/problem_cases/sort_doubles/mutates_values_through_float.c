/* expect: wrong_answer
 * why: sorts a float copy (half the traffic, twice the SIMD lanes) and writes it back: the order is right, but
 * every value was rounded to float on the way, so x no longer holds the input's values. The sort's one argument
 * is in-out: mutating its input here means changing values instead of permuting them. */
#include <stddef.h>
#include <stdlib.h>

static int ascending(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void sort_doubles(size_t n, double *x) {
    float *f = malloc(n * sizeof(float));
    if (!f) return;
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    qsort(f, n, sizeof(float), ascending);
    for (size_t i = 0; i < n; i++) x[i] = f[i];
    free(f);
}
