/* The naive reference of `sort_doubles`: a textbook recursive quicksort (middle element as pivot, Hoare's
 * partition), no threads, no vectorisation hints. Written out rather than a call to libc's qsort, so that the
 * baseline measures compiled code of the same kind as a candidate's, not libc's comparison callbacks. */
#include <stddef.h>

static void quicksort(double *x, ptrdiff_t lo, ptrdiff_t hi) {
    if (lo >= hi) return;
    double pivot = x[lo + (hi - lo) / 2];
    ptrdiff_t i = lo - 1, j = hi + 1;
    for (;;) {
        do i++;
        while (x[i] < pivot);
        do j--;
        while (x[j] > pivot);
        if (i >= j) break;
        double t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    quicksort(x, lo, j);
    quicksort(x, j + 1, hi);
}

void sort_doubles(size_t n, double *x) {
    if (n > 1) quicksort(x, 0, (ptrdiff_t)n - 1);
}
