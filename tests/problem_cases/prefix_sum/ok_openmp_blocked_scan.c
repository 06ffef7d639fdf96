/* expect: ok
 * why: an honest parallel scan: each thread sums its block, the block totals are scanned, then each thread
 * scans its block from its offset. y[i] is still a sum of exactly x[0..i], in another order than left to right,
 * and the inner loops vectorise with SIMD partial sums. */
#include <omp.h>
#include <stddef.h>

#define MAX_THREADS 256

void prefix_sum(size_t n, const double *x, double *y) {
    double offset[MAX_THREADS + 1];
#pragma omp parallel num_threads(omp_get_max_threads() < MAX_THREADS ? omp_get_max_threads() : MAX_THREADS)
    {
        size_t threads = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        size_t start = n * t / threads, end = n * (t + 1) / threads;
        double total = 0.0;
#pragma omp simd reduction(+ : total)
        for (size_t i = start; i < end; i++) total += x[i];
        offset[t + 1] = total;
#pragma omp barrier
#pragma omp single
        {
            offset[0] = 0.0;
            for (size_t k = 1; k <= threads; k++) offset[k] += offset[k - 1];
        }
        double s = offset[t];
        for (size_t i = start; i < end; i++) {
            s += x[i];
            y[i] = s;
        }
    }
}
