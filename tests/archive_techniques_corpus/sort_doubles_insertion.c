/* techniques: none
 * why: insertion sort in place: each element moved left past the larger ones.
 */
#include <stddef.h>

void sort_doubles(size_t n, double *x)
{
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
