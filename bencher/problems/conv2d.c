/* Harness of problem `conv2d`: a 5x5 single-precision correlation of an n x n image, zero padding.
 *
 * out[i][j] = sum over a, b in -2..2 of kernel[(a+2)*5 + (b+2)] * img[i+a][j+b], the terms outside the
 * image being zero. The reference is computed in double: a product of two floats is exact in double, and
 * 25 double additions err by at most 25 * 2^-53 * S, where S = sum |kernel * img| over the element's taps.
 * A float computation of the same sum in any order, with or without FMA, errs by at most
 * gamma_25 = 25 u / (1 - 25 u) times S (u = 2^-24: each product rounded once, each addition once; Higham,
 * Accuracy and Stability, 3.1). The bound per element is 25 * FLT_EPSILON * S = 50 u S, which covers both
 * with room. It is rigorous, and far below the error of a lower precision (half precision, 2^-11 relative,
 * exceeds it 160 times; bfloat16, 2^-8, over a thousand times) or of a skipped tap or a wrong padding (about
 * S itself). An element's bound is zero only where all its terms are exactly zero, and its value must then be
 * exactly zero. Every element is compared, row by row in 4-lane vectors: the reference does twice the naive
 * kernel's work, in double.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

typedef void (*conv2d_fn)(int n, const float *img, const float *kernel, float *out);
const char problem_entry[] = "conv2d";

#define TAPS 5 /* the kernel is TAPS x TAPS, centred */
#define REACH (TAPS / 2)

struct problem {
    long n;
    double tolerance;
    float *IMG, *KERNEL, *OUT;  /* shared with the candidate */
    float *img, *kernel, *out;  /* private: inputs as we wrote them, output as it was at return */
    double *sum, *magnitude;    /* one row of the reference and of its sum of |terms| */
};

problem *problem_setup(const problem_params *params) {
    size_t n = (size_t)params->n, bytes = n * n * sizeof(float);
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = params->n;
    p->tolerance = params->tolerance;
    p->IMG = input_buffer(bytes, "img", (void **)&p->img);
    p->KERNEL = input_buffer(TAPS * TAPS * sizeof(float), "kernel", (void **)&p->kernel);
    p->OUT = output_buffer(bytes, "out", GARBAGE_NAN, (void **)&p->out);
    p->sum = malloc(n * sizeof(double));
    p->magnitude = malloc(n * sizeof(double));
    if (!p->IMG || !p->KERNEL || !p->OUT || !p->sum || !p->magnitude) return NULL;
    return p;
}

void problem_fill(problem *p) {
    random_fill_float(p->img, (size_t)(p->n * p->n));
    random_fill_float(p->kernel, TAPS * TAPS);
}

void problem_call(problem *p, entry_point entry) { ((conv2d_fn)entry)((int)p->n, p->IMG, p->KERNEL, p->OUT); }

/* Explicit 4-lane vectors (GCC vector extensions, for any -march): the harness is built with -O2, which
 * vectorizes loops of unknown length only with whole vectors, so the scalar reference took 3x as long. */
typedef double doubles __attribute__((vector_size(32)));
typedef float floats __attribute__((vector_size(16)));
typedef long long bits __attribute__((vector_size(32)));
#define LANES 4

/* One tap over a row: sum[j] += k * row[j + b] and magnitude[j] += |k * row[j + b]| for lo <= j < hi. Each
 * term is exact (a product of two floats). */
static void add_tap(double *sum, double *magnitude, const float *row, double k, long b, long lo, long hi) {
    const bits no_sign = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
    long j = lo;
    for (; j + LANES <= hi; j += LANES) {
        floats x;
        doubles s, m;
        memcpy(&x, row + j + b, sizeof x);
        memcpy(&s, sum + j, sizeof s);
        memcpy(&m, magnitude + j, sizeof m);
        doubles term = k * __builtin_convertvector(x, doubles);
        s += term;
        m += (doubles)((bits)term & no_sign);
        memcpy(sum + j, &s, sizeof s);
        memcpy(magnitude + j, &m, sizeof m);
    }
    for (; j < hi; j++) {
        double term = k * row[j + b];
        sum[j] += term;
        magnitude[j] += fabs(term);
    }
}

int problem_verify(problem *p, double *max_error, double *bound) {
    long n = p->n;
    double *sum = p->sum, *magnitude = p->magnitude, scale = p->tolerance * TAPS * TAPS * FLT_EPSILON;
    worst_element worst = WORST_NONE;
    for (long i = 0; i < n; i++) {
        memset(sum, 0, (size_t)n * sizeof(double));
        memset(magnitude, 0, (size_t)n * sizeof(double));
        /* Tap by tap, each over the part of the row where it lands inside the image (zero padding). */
        for (long a = -REACH; a <= REACH; a++) {
            if (i + a < 0 || i + a >= n) continue;
            for (long b = -REACH; b <= REACH; b++)
                add_tap(sum, magnitude, p->img + (i + a) * n, p->kernel[(a + REACH) * TAPS + (b + REACH)], b,
                        b < 0 ? -b : 0, b > 0 ? n - b : n);
        }
        for (long j = 0; j < n; j++)
            worst_consider(&worst, fabs((double)p->out[i * n + j] - sum[j]), scale * magnitude[j]);
    }
    return worst_report(&worst, max_error, bound);
}
