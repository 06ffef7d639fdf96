/* Harness of problem `reduce_sum`: the sum of n doubles, returned as the entry point's value.
 *
 * Inputs are uniform in [-1, 1). Any order of the n - 1 additions (left to right, pairwise, SIMD lanes,
 * OpenMP partial sums) gives |s - exact| <= gamma_{n-1} sum |x_i|, gamma_k = k u / (1 - k u), u = eps / 2
 * (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., section 4.2). That rigorous bound is
 * about n^2 eps / 2 here (0.044 at n = 20000003) and let a sum in single precision through (a red-team
 * program: elements rounded to float, blocks of 64 summed in float, error 1e-3 at that size). Rounding
 * errors of a sum of random terms grow like sqrt(n), not n: left to right their standard deviation is about
 * 0.12 n eps (the partial sums are a random walk), far less in pairwise or blocked orders. So the bound is
 * tolerance * sqrt(n - 1) * eps * sum |x_i|, as dgemm's Freivalds check takes n^2.5 over n^3: about 4000
 * standard deviations of the left-to-right sum at the smallest size and 40000 at the largest, while the
 * single-precision sum misses it by 100x. The reference is the left-to-right sum in long double (x86: a
 * 64-bit significand), whose own error is at most (n - 1) LDBL_EPSILON sum |x_i|; the check admits it too,
 * so an honest sum is never charged (where long double is only double, that admission is the rigorous
 * bound itself, and single precision passes again: x86 and aarch64 Linux have a wider long double).
 * One returned scalar hides little: leaving out one element moves the sum by its magnitude, ~0.5, far past
 * the bound (3.5e-9 at n = 100003, 1e-5 at 20000003), and the inputs change one value in 16 at hidden
 * positions (monitor.c), so a sum that does not read all of x is wrong by more still. Skipping even one
 * element fails every call but with probability ~1e-5; and a run makes several calls. The sum goes to an
 * output buffer of its own, NaN until the call returns.
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
    *bound = (p->tolerance * sqrt(additions) * DBL_EPSILON + additions * LDBL_EPSILON) * magnitude;
    *max_error = (double)fabsl(*p->s - sum);
    return *max_error <= *bound; /* false for NaN */
}
