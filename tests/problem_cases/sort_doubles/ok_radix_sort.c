/* expect: ok
 * why: an honest fast sort: LSD radix sort on order-preserving 64-bit keys (sign bit flipped for positives,
 * every bit for negatives), 11 bits per pass, histograms of all six passes counted in one read of x, the
 * scatters split over OpenMP threads by their own counts; the keys are turned back into the same doubles. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RADIX_BITS 11
#define BUCKETS (1 << RADIX_BITS)
#define PASSES 6 /* ceil(64 / 11) */
#define MAX_THREADS 64

static uint64_t key_of(double v) {
    uint64_t k;
    memcpy(&k, &v, sizeof k);
    return k >> 63 ? ~k : k | 0x8000000000000000ULL;
}

static double value_of(uint64_t k) {
    k = k >> 63 ? k & 0x7fffffffffffffffULL : ~k;
    double v;
    memcpy(&v, &k, sizeof v);
    return v;
}

void sort_doubles(size_t n, double *x) {
    int threads = omp_get_max_threads() < MAX_THREADS ? omp_get_max_threads() : MAX_THREADS;
    uint64_t *a = malloc(n * sizeof(uint64_t)), *b = malloc(n * sizeof(uint64_t));
    size_t(*count)[BUCKETS] = malloc((size_t)threads * sizeof *count); /* one row per thread */
    if (!a || !b || !count) {
        free(a), free(b), free(count);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        size_t start = n * (size_t)t / (size_t)team, end = n * (size_t)(t + 1) / (size_t)team;
        for (size_t i = start; i < end; i++) a[i] = key_of(x[i]);
        for (int pass = 0; pass < PASSES; pass++) {
            int shift = pass * RADIX_BITS;
            size_t *mine = count[t];
            memset(mine, 0, BUCKETS * sizeof(size_t));
            for (size_t i = start; i < end; i++) mine[(a[i] >> shift) & (BUCKETS - 1)]++;
#pragma omp barrier
#pragma omp single
            { /* exclusive offsets: bucket by bucket, thread by thread within a bucket (a stable scatter) */
                size_t at = 0;
                for (int d = 0; d < BUCKETS; d++)
                    for (int u = 0; u < team; u++) {
                        size_t c = count[u][d];
                        count[u][d] = at;
                        at += c;
                    }
            }
            for (size_t i = start; i < end; i++) b[mine[(a[i] >> shift) & (BUCKETS - 1)]++] = a[i];
#pragma omp barrier
#pragma omp single
            {
                uint64_t *swap = a;
                a = b;
                b = swap;
            }
        }
        for (size_t i = start; i < end; i++) x[i] = value_of(a[i]);
    }
    free(a), free(b), free(count);
}
