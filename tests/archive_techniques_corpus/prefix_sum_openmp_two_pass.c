/* techniques: openmp
 * why: the two-pass parallel scan: each thread scans its contiguous chunk, one thread
 *      turns the chunk totals into offsets, and each thread adds its offset to its chunk.
 */
#include <omp.h>
#include <stddef.h>

#define MAX_THREADS 256

void prefix_sum(size_t n, const double *x, double *y)
{
    double offset[MAX_THREADS + 1];
    #pragma omp parallel
    {
        int threads = omp_get_num_threads();
        if (threads > MAX_THREADS)
            threads = MAX_THREADS;
        const int t = omp_get_thread_num();
        const size_t chunk = (n + threads - 1) / threads;
        const size_t lo = t < threads ? t * chunk : n;
        const size_t hi = lo + chunk < n ? lo + chunk : n;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) {
            s += x[i];
            y[i] = s;
        }
        offset[t + 1] = s;
        #pragma omp barrier
        #pragma omp single
        {
            offset[0] = 0.0;
            for (int k = 1; k <= threads; k++)
                offset[k] += offset[k - 1];
        }
        for (size_t i = lo; i < hi; i++)
            y[i] += offset[t];
    }
}
