/* Harness of problem `prefix_sum`: the inclusive scan y[i] = x[0] + ... + x[i] of n doubles.
 *
 * Inputs are uniform in [-1, 1). However a scan is organised (left to right, blocks whose totals are scanned
 * then added back, SIMD shifts within a register, Blelloch's up and down sweeps), y[i] is a tree of additions
 * whose leaves are x[0..i], each once: at most i additions, so |y_i - exact_i| <= gamma_i S_i with
 * S_i = sum_{j<=i} |x_j|, gamma_k = k u / (1 - k u), u = eps / 2 (Higham, Accuracy and Stability of
 * Numerical Algorithms, 2nd ed., section 4.2). That is below (i + 1) eps S_i while i u <= 1/2, so the bound
 * of element i is tolerance (i + 1) eps S_i: c = 1, with a factor 2 to spare that covers the rounding of the
 * check's own arithmetic and of S_i, summed in double (relative error at most i u; long double would
 * triple the check's time). The reference is the left-to-right scan in long double (x86: a 64-bit
 * significand), whose error, at most i LDBL_EPSILON S_i (2^-11 of the bound), the check admits too: an
 * honest scan is never charged. Every element is compared (O(n), about twice the naive scan's time), and the
 * verdict reports the element that came closest to, or furthest past, its own bound.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "monitor.h"

typedef void (*prefix_sum_fn)(size_t n, const double *x, double *y);
const char problem_entry[] = "prefix_sum";

struct problem {
    size_t n;
    double tolerance;
    double *X, *Y; /* shared with the candidate */
    double *x, *y; /* private */
};

problem *problem_setup(const problem_params *params) {
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = (size_t)params->n;
    p->tolerance = params->tolerance;
    p->X = input_buffer(p->n * sizeof(double), "x", (void **)&p->x);
    p->Y = output_buffer(p->n * sizeof(double), "y", GARBAGE_NAN, (void **)&p->y);
    if (!p->X || !p->Y) return NULL;
    return p;
}

void problem_fill(problem *p) { random_fill(p->x, p->n); }

void problem_call(problem *p, entry_point entry) { ((prefix_sum_fn)entry)(p->n, p->X, p->Y); }

int problem_verify(problem *p, double *max_error, double *bound) {
    double per_term = p->tolerance * DBL_EPSILON + LDBL_EPSILON;
    long double sum = 0.0L;
    double magnitude = 0.0;
    /* The element worst relative to its bound: a NaN error, once seen, stays the worst. Starting below 0, the
     * first element with a bound above 0 is taken, so the reported bound is positive even when every error is 0
     * (the bencher takes no bound of 0). */
    double worst_ratio = -1.0, worst_error = 0.0, worst_bound = 0.0;
    for (size_t i = 0; i < p->n; i++) {
        sum += p->x[i];
        magnitude += fabs(p->x[i]);
        double e = (double)fabsl(p->y[i] - sum), b = per_term * (double)(i + 1) * magnitude;
        if (e > worst_ratio * b || isnan(e)) { /* a new worst (a product: no division per element) */
            worst_ratio = b > 0 ? e / b : INFINITY, worst_error = e, worst_bound = b;
            if (isnan(e)) break;
        }
    }
    *max_error = worst_error;
    *bound = worst_bound;
    return worst_error <= worst_bound; /* false for NaN */
}
