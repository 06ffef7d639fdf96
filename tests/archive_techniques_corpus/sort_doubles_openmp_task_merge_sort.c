/* techniques: openmp
 * why: top-down merge sort whose two halves are sorted as OpenMP tasks (down to a cutoff,
 *      below which insertion sort), merged through a scratch buffer.
 */
#include <stdlib.h>
#include <string.h>

#define CUTOFF 32

static void insertion(double *x, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        double v = x[i];
        size_t j = i;
        for (; j > 0 && x[j - 1] > v; j--)
            x[j] = x[j - 1];
        x[j] = v;
    }
}

static void merge_sort(double *x, double *tmp, size_t n)
{
    if (n <= CUTOFF) {
        insertion(x, n);
        return;
    }
    size_t h = n / 2;
    #pragma omp task if (n > 4096)
    merge_sort(x, tmp, h);
    merge_sort(x + h, tmp + h, n - h);
    #pragma omp taskwait
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = x[j] < x[i] ? x[j++] : x[i++];
    while (i < h)
        tmp[k++] = x[i++];
    while (j < n)
        tmp[k++] = x[j++];
    memcpy(x, tmp, n * sizeof(double));
}

void sort_doubles(size_t n, double *x)
{
    double *tmp = malloc(n * sizeof(double));
    if (tmp == NULL)
        return;
    #pragma omp parallel
    #pragma omp single
    merge_sort(x, tmp, n);
    free(tmp);
}
