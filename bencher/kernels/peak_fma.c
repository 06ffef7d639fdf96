/* Peak probe: the double-precision FMA throughput of this node with OMP_NUM_THREADS threads.
 * Prints one line, `gflops <value>`. Twelve independent accumulator vectors hide the FMA latency;
 * the vector width is the widest -march=native offers (gcc splits 512-bit vectors if it must). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef double v8 __attribute__((vector_size(64)));
#define CHAINS 12

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 50000000;
    double sink = 0.0, best = 0.0;
    for (int trial = 0; trial < 3; trial++) {
        double start = now_s();
#pragma omp parallel reduction(+ : sink)
        {
            v8 acc[CHAINS], x = {0}, y = {0};
            for (int c = 0; c < CHAINS; c++)
                for (int l = 0; l < 8; l++) acc[c][l] = (double)(c + l + omp_get_thread_num());
            for (int l = 0; l < 8; l++) x[l] = 0.999999, y[l] = 1e-9;
            for (long i = 0; i < iterations / CHAINS; i++)
#pragma GCC unroll 12
                for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * x + y; /* kept in registers */
            for (int c = 0; c < CHAINS; c++)
                for (int l = 0; l < 8; l++) sink += acc[c][l];
        }
        double seconds = now_s() - start;
        double flops = 2.0 * 8.0 * (double)(iterations / CHAINS * CHAINS) * omp_get_max_threads();
        if (flops / seconds > best) best = flops / seconds;
    }
    printf("gflops %.3f\nsink %g\n", best * 1e-9, sink);
    return 0;
}
