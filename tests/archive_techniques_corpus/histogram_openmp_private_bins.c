/* techniques: openmp
 * why: each thread counts into its own 256 bins (no sharing while counting), then adds
 *      them into the result under `omp critical`.
 */
#include <stddef.h>

void histogram(size_t n, const int *data, int *bins)
{
    for (int b = 0; b < 256; b++)
        bins[b] = 0;
    #pragma omp parallel
    {
        int local[256] = {0};
        #pragma omp for nowait
        for (size_t i = 0; i < n; i++)
            local[data[i]]++;
        #pragma omp critical
        for (int b = 0; b < 256; b++)
            bins[b] += local[b];
    }
}
