/* Peak probe: the double-precision throughput of this node with OMP_NUM_THREADS threads, for the ISA this
 * file is compiled for (-march=...), and the clock it ran at. Trusted code: built and run by the bencher,
 * outside the sandbox. Prints `key value` lines:
 *   isa <avx512|avx2-fma|avx|sse2|sve|neon|scalar>   the vector ISA the compiler targeted
 *   lanes <doubles per vector>   fma <1|0>   chains <independent accumulators>
 *   gflops <best of the trials: all threads' work / the wall time of the parallel region>
 *   gflops_cpu <best of the trials: the sum of each thread's work / that thread's CPU time>
 *   clock_ghz <clock of thread 0 (a dependent add chain right after each trial, in its CPU time): the highest>
 *
 * Why the accumulator count depends on the ISA: each chain must stay in a register. Twelve 512-bit
 * chains built for AVX2 become 24 ymm halves in 16 registers; the probe then spills and measures stores,
 * not FMAs (3.3 GFLOPS on a 50 GFLOPS Zen 3 core). So the vector width is the ISA's own, and the chains
 * are as many as hide the latency (about 4-5 cycles x 2 pipes) while leaving registers for the operands. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
#define ISA "avx512"
#define VECTOR_BYTES 64
#define CHAINS 16 /* of 32 zmm registers */
#define HAS_FMA 1
#elif defined(__AVX__)
#define VECTOR_BYTES 32
#if defined(__FMA__)
#define ISA "avx2-fma"
#define CHAINS 12 /* of 16 ymm registers; two hold the operands */
#define HAS_FMA 1
#else
#define ISA "avx"
#define CHAINS 6 /* multiply chains, and as many add chains: 12 of 16 ymm registers */
#define HAS_FMA 0
#endif
#elif defined(__ARM_FEATURE_SVE_BITS) && __ARM_FEATURE_SVE_BITS > 0
#define ISA "sve"
#define VECTOR_BYTES (__ARM_FEATURE_SVE_BITS / 8) /* a fixed length, given by -msve-vector-bits */
#define CHAINS 16                                  /* of 32 z registers */
#define HAS_FMA 1
#elif defined(__ARM_NEON) && defined(__aarch64__)
#define ISA "neon"
#define VECTOR_BYTES 16
#define CHAINS 16 /* of 32 v registers */
#define HAS_FMA 1
#elif defined(__SSE2__)
#define ISA "sse2"
#define VECTOR_BYTES 16
#define CHAINS 6 /* multiply chains, and as many add chains: 12 of 16 xmm registers */
#define HAS_FMA 0
#else
#define ISA "scalar"
#define VECTOR_BYTES 8
#define CHAINS 6
#define HAS_FMA 0
#endif

#define LANES (VECTOR_BYTES / 8)
typedef double vec __attribute__((vector_size(VECTOR_BYTES)));

static double seconds_of(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static double now_s(void) { return seconds_of(CLOCK_MONOTONIC); }
/* CPU time of the calling thread: time slices lost to other processes do not count, so the per-thread
 * rates below are the core's, even on a node where another job takes the probe's CPU now and then. */
static double thread_cpu_s(void) { return seconds_of(CLOCK_THREAD_CPUTIME_ID); }

/* Cycles per second of this thread: a chain of dependent integer adds retires one per cycle on every
 * x86-64 and aarch64 core. Needs assembly: the compiler would fold a C loop of adds. */
static double clock_hz(long blocks) {
    uint64_t x = 0;
    double start = thread_cpu_s();
    for (long i = 0; i < blocks; i++) {
#if defined(__x86_64__)
        __asm__ volatile(".rept 100\n\taddq $1, %0\n\t.endr" : "+r"(x));
#elif defined(__aarch64__)
        __asm__ volatile(".rept 100\n\tadd %0, %0, #1\n\t.endr" : "+r"(x));
#else
        return 0.0; /* unknown architecture: no clock, so no theoretical peak to hold the probe to */
#endif
    }
    double seconds = thread_cpu_s() - start;
    return x == (uint64_t)blocks * 100 ? (double)blocks * 100.0 / seconds : 0.0;
}

/* One thread's share of a trial: `iterations` updates of every chain. Returns a value that depends on
 * every chain, so none is optimised away. */
static double run_chains(long iterations, int seed) {
    vec x, y, acc[CHAINS];
    for (int l = 0; l < LANES; l++) x[l] = 0.999999, y[l] = 1e-9;
    for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < LANES; l++) acc[c][l] = 1.0 + 1e-3 * (double)(c + l + seed);
#if HAS_FMA
    for (long i = 0; i < iterations; i++)
#pragma GCC unroll 16
        for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * x + y; /* one fused multiply-add per chain */
#else
    /* No FMA: independent multiply chains and add chains, so both kinds of pipe stay busy. */
    vec sum[CHAINS];
    for (int c = 0; c < CHAINS; c++) sum[c] = acc[c];
    for (long i = 0; i < iterations; i++)
#pragma GCC unroll 16
        for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * x, sum[c] = sum[c] + y;
    for (int c = 0; c < CHAINS; c++) acc[c] += sum[c];
#endif
    double out = 0.0;
    for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < LANES; l++) out += acc[c][l];
    return out;
}

#define TRIALS 5

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 4000000;
    double sink = 0.0, best = 0.0, best_cpu = 0.0, clock = 0.0;
    double flops_per_thread = 2.0 * LANES * CHAINS * (double)iterations;
    for (int trial = 0; trial < TRIALS; trial++) {
        double start = now_s(), rate_cpu = 0.0;
#pragma omp parallel reduction(+ : sink, rate_cpu)
        {
            double cpu_start = thread_cpu_s();
            sink += run_chains(iterations, omp_get_thread_num());
            rate_cpu += flops_per_thread / (thread_cpu_s() - cpu_start);
        }
        double seconds = now_s() - start;
        /* Measured right after the FMA burst, so a core that lowers its clock for wide vectors is measured
         * at the lowered clock. The highest reading: an interruption can only make a reading lower. */
        double hz = clock_hz(20000);
        if (hz > clock) clock = hz;
        double rate = flops_per_thread * omp_get_max_threads() / seconds;
        if (rate > best) best = rate;
        if (rate_cpu > best_cpu) best_cpu = rate_cpu;
    }
    printf("isa %s\nlanes %d\nfma %d\nchains %d\n", ISA, LANES, HAS_FMA, CHAINS);
    printf("gflops %.3f\ngflops_cpu %.3f\nclock_ghz %.3f\nsink %g\n", best * 1e-9, best_cpu * 1e-9, clock * 1e-9, sink);
    return 0;
}
