/* expect: wrong_answer
 * detail: wrote outside its argument x
 * why: sorts correctly with a sentinel stored at x[n], one element past the end of the array: the bytes
 *      between a buffer's end and its guard page are checked after every call. */
#include <stddef.h>

void sort_doubles(size_t n, double *x) {
    x[n] = 2.0; /* a sentinel above every value, for the insertion loop below */
    for (size_t i = 1; i < n; i++) {
        double v = x[i];
        size_t j = i;
        while (j > 0 && x[j - 1] > v) {
            x[j] = x[j - 1];
            j--;
        }
        x[j] = v;
    }
}
