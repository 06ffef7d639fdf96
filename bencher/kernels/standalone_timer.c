/* Standalone timer: the anchor `hpcrl perf bencher` compares the bencher's figures against.
 *
 * Linked with one kernel file that defines the dgemm entry point (reference_dgemm.c, openblas_dgemm.c,
 * a ladder file), built and run directly on the host: no sandbox, no fork, no pipe, no per-call
 * refill or verification. Inputs are filled once (uniform in [-1, 1), like the harness); each call
 * is timed with CLOCK_MONOTONIC immediately around it. The budget mirrors the bencher's defaults:
 * `warmup` untimed calls, then timed calls until `reps` calls or `max_seconds` of timed calls
 * (at least 3). Sanity check: 64 sampled elements of C are compared with their dot products.
 *
 * Usage: standalone_timer n=512 warmup=1 reps=30 max_seconds=1
 * Output, one `key value` per line: gflops_median, gflops_min, gflops_max, cv, reps, max_error, bound.
 * Exit 1 when the sampled elements are wrong, 2 on bad arguments or no memory.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void dgemm(int n, const double *A, const double *B, double *C);

#define MAX_REPS 10000
#define SAMPLES 64

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t lcg_state = 0x9E3779B97F4A7C15ull;

static double uniform(void) { /* [-1, 1): the inputs' distribution only matters for the error bound */
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) * 0x1.0p-52 - 1.0;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double *aligned_doubles(size_t count) {
    size_t bytes = (count * sizeof(double) + 63) / 64 * 64; /* aligned_alloc wants a multiple of 64 */
    return aligned_alloc(64, bytes);
}

int main(int argc, char **argv) {
    long n = 512, warmup = 1, reps = 30;
    double max_seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "n=", 2)) n = atol(argv[i] + 2);
        else if (!strncmp(argv[i], "warmup=", 7)) warmup = atol(argv[i] + 7);
        else if (!strncmp(argv[i], "reps=", 5)) reps = atol(argv[i] + 5);
        else if (!strncmp(argv[i], "max_seconds=", 12)) max_seconds = atof(argv[i] + 12);
        else {
            fprintf(stderr, "standalone_timer: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (n < 1 || warmup < 0 || reps < 3 || reps > MAX_REPS || max_seconds <= 0) {
        fprintf(stderr, "standalone_timer: need n >= 1, warmup >= 0, 3 <= reps <= %d, max_seconds > 0\n", MAX_REPS);
        return 2;
    }
    size_t count = (size_t)n * (size_t)n;
    double *A = aligned_doubles(count), *B = aligned_doubles(count), *C = aligned_doubles(count);
    double *seconds = malloc(sizeof(double) * (size_t)reps);
    if (!A || !B || !C || !seconds) return 2;
    for (size_t i = 0; i < count; i++) A[i] = uniform();
    for (size_t i = 0; i < count; i++) B[i] = uniform();
    memset(C, 0, count * sizeof(double));

    for (long i = 0; i < warmup; i++) dgemm((int)n, A, B, C);
    long timed = 0;
    double total = 0.0;
    while (timed < reps && (timed < 3 || total < max_seconds)) {
        double t0 = now_s();
        dgemm((int)n, A, B, C);
        double t1 = now_s();
        seconds[timed++] = t1 - t0;
        total += t1 - t0;
    }

    double max_error = 0.0, bound = (double)n * (double)n * DBL_EPSILON;
    for (int s = 0; s < SAMPLES; s++) {
        long i = (long)((uint64_t)s * 2654435761u % (uint64_t)n);
        long j = (long)(((uint64_t)s * 40503u + 7) % (uint64_t)n);
        double expected = 0.0;
        for (long k = 0; k < n; k++) expected += A[i * n + k] * B[k * n + j];
        double error = fabs(C[i * n + j] - expected);
        if (!(error <= max_error)) max_error = error; /* NaN sticks */
    }

    double mean = total / (double)timed, var = 0.0;
    for (long i = 0; i < timed; i++) var += (seconds[i] - mean) * (seconds[i] - mean);
    double cv = timed > 1 ? sqrt(var / (double)(timed - 1)) / mean : 0.0;
    double flops = 2.0 * (double)n * (double)n * (double)n;
    for (long i = 0; i < timed; i++) seconds[i] = flops / seconds[i] * 1e-9; /* now GFLOPS, like the bencher */
    qsort(seconds, (size_t)timed, sizeof(double), by_value);
    double median = timed % 2 ? seconds[timed / 2] : 0.5 * (seconds[timed / 2 - 1] + seconds[timed / 2]);
    printf("gflops_median %.6f\n", median);
    printf("gflops_min %.6f\n", seconds[0]);
    printf("gflops_max %.6f\n", seconds[timed - 1]);
    printf("cv %.6f\n", cv);
    printf("reps %ld\n", timed);
    printf("max_error %.3e\n", max_error);
    printf("bound %.3e\n", bound);
    free(A);
    free(B);
    free(C);
    free(seconds);
    return max_error <= bound ? 0 : 1;
}
