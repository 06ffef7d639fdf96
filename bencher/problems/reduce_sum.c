/* Harness of problem `reduce_sum`: the sum of n doubles, returned as the entry point's value.
 *
 * Inputs are uniform in [-1, 1). Any order of the n - 1 additions (left to right, pairwise, SIMD lanes,
 * OpenMP partial sums) gives |s - exact| <= gamma_{n-1} sum |x_i|, gamma_k = k u / (1 - k u), u = eps / 2
 * (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., section 4.2), which is below
 * (n - 1) eps sum |x_i| while (n - 1) u <= 1/2: that, times the tolerance, is the bound. The reference is
 * the left-to-right sum in long double (x86: a 64-bit significand), whose own error is at most
 * (n - 1) LDBL_EPSILON sum |x_i|, 2^-11 of the bound; the check admits it too, so an honest sum is never
 * charged. The factor 2 between gamma_{n-1} and (n - 1) eps covers the rounding of the check's own
 * arithmetic and of sum |x_i|, summed in double (relative error at most (n - 1) u). Where long double is
 * only double, the check admits twice the bound; where it is binary128, 2^-60 more than the bound.
 * One returned scalar hides little: the bound is about n^2 eps / 2 (1.1e-6 at n = 100003, 0.044 at
 * 20000003), while leaving out one element moves the sum by its magnitude, ~0.5: a skipped element escapes
 * one call with probability about 1e-6 at the smallest size and 4% at the largest, and not the several calls
 * of a run. The sum goes to an output buffer of its own, NaN until the call returns.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "monitor.h"

typedef double (*reduce_sum_fn)(size_t n, const double *x);
const char problem_entry[] = "reduce_sum";

struct problem {
    size_t n;
    double tolerance;
    double *X, *S; /* shared with the candidate: the input and the returned sum */
    double *x, *s; /* private */
};

problem *problem_setup(const problem_params *params) {
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = (size_t)params->n;
    p->tolerance = params->tolerance;
    p->X = input_buffer(p->n * sizeof(double), "x", (void **)&p->x);
    p->S = output_buffer(sizeof(double), "the returned sum", GARBAGE_NAN, (void **)&p->s);
    if (!p->X || !p->S) return NULL;
    return p;
}

void problem_fill(problem *p) { random_fill(p->x, p->n); }

void problem_call(problem *p, entry_point entry) { *p->S = ((reduce_sum_fn)entry)(p->n, p->X); }

int problem_verify(problem *p, double *max_error, double *bound) {
    long double sum = 0.0L;
    double magnitude = 0.0;
    for (size_t i = 0; i < p->n; i++) {
        sum += p->x[i];
        magnitude += fabs(p->x[i]);
    }
    double additions = (double)(p->n - 1);
    *bound = (p->tolerance * DBL_EPSILON + LDBL_EPSILON) * additions * magnitude;
    *max_error = (double)fabsl(*p->s - sum);
    return *max_error <= *bound; /* false for NaN */
}
