/* expect: wrong_answer
 * why: sorts the first n - n % 8 elements (as a sort of whole 8-element vector blocks would, without its
 * remainder): the last n % 8 (7 at n = 10007) stay where they were. */
#include <stddef.h>
#include <stdlib.h>

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void sort_doubles(size_t n, double *x) { qsort(x, n - n % 8, sizeof(double), ascending); }
