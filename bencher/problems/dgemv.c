/* Harness of problem `dgemv`: y = alpha * A * x + beta * y for an n x n row-major A, y updated in place.
 *
 * alpha and beta are fresh each repetition, with magnitudes in [0.25, 0.75] and random signs (never 0 or
 * 1, so a candidate that skips either scaling is wrong); A, x and the initial y are uniform in [-1, 1)
 * (multiples of 2^-52: no product underflows). Error bound of element i, with
 * S_i = |alpha| sum_j |A_ij x_j| + |beta y_i|:
 *     |y_i - reference_i| <= tolerance * (n + 3) * eps * S_i.
 * Why: a dot product of length n evaluated in any order, with or without FMA, is within n u sum_j |A_ij x_j|
 * of the exact value (u = eps / 2; Jeannerod and Rump, SIAM J. Matrix Anal. Appl. 34(2), 2013), and the
 * scaling by alpha, the product beta y_i and the final addition add at most two roundings to each term
 * (also when alpha is folded into A or x first, or y is accumulated into in place), so a candidate and the
 * reference (double, four partial sums) are each within (n + 2) u S_i + (2n + 1) u^2 S_i: together within
 * (n + 2) eps S_i (1 + 2u). The extra eps S_i covers that second-order term and the rounding of S_i itself
 * (relative (n + 2) u) for every n below 10^7. Realistic errors grow like sqrt(n) u: single-precision
 * accumulation fails by orders of magnitude. Every element is compared: the check reads A once, as the
 * kernel must, and costs about one naive call.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "monitor.h"

typedef void (*dgemv_fn)(int n, double alpha, const double *A, const double *x, double beta, double *y);
const char problem_entry[] = "dgemv";

struct problem {
    long n;
    double tolerance;
    double *A, *X, *Y, *SCALARS;       /* shared with the candidate; SCALARS = {alpha, beta} */
    double *a, *x, *y0, *y, *scalars; /* private: inputs and initial y as we wrote them, y as returned */
};

problem *problem_setup(const problem_params *params) {
    size_t n = (size_t)params->n;
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = params->n;
    p->tolerance = params->tolerance;
    p->A = input_buffer(n * n * sizeof(double), "A", (void **)&p->a);
    p->X = input_buffer(n * sizeof(double), "x", (void **)&p->x);
    p->Y = inout_buffer(n * sizeof(double), "y", (void **)&p->y0, (void **)&p->y);
    /* The scalars travel in shared memory too: problem_call runs in the candidate's process, which holds a
     * copy of this struct from before the first fill. */
    p->SCALARS = input_buffer(2 * sizeof(double), "alpha and beta", (void **)&p->scalars);
    if (!p->A || !p->X || !p->Y || !p->SCALARS) return NULL;
    return p;
}

void problem_fill(problem *p) {
    size_t n = (size_t)p->n;
    random_fill(p->a, n * n);
    random_fill(p->x, n);
    random_fill(p->y0, n);
    random_draw(p->scalars, 2);
    for (int s = 0; s < 2; s++) p->scalars[s] = copysign(0.25 + 0.5 * fabs(p->scalars[s]), p->scalars[s]);
}

void problem_call(problem *p, entry_point entry) {
    ((dgemv_fn)entry)((int)p->n, p->SCALARS[0], p->A, p->X, p->SCALARS[1], p->Y);
}

int problem_verify(problem *p, double *max_error, double *bound) {
    long n = p->n;
    double alpha = p->scalars[0], beta = p->scalars[1];
    worst_element worst = WORST_NONE;
    for (long i = 0; i < n; i++) {
        const double *row = p->a + i * n;
        double dot[4] = {0.0}, magnitude[4] = {0.0}; /* four partial sums: the check runs at memory speed */
        long j = 0;
        for (; j + 4 <= n; j += 4)
            for (int l = 0; l < 4; l++) {
                dot[l] += row[j + l] * p->x[j + l];
                magnitude[l] += fabs(row[j + l] * p->x[j + l]);
            }
        for (; j < n; j++) {
            dot[0] += row[j] * p->x[j];
            magnitude[0] += fabs(row[j] * p->x[j]);
        }
        double sum = (dot[0] + dot[1]) + (dot[2] + dot[3]);
        double terms = (magnitude[0] + magnitude[1]) + (magnitude[2] + magnitude[3]);
        double want = alpha * sum + beta * p->y0[i], scale = fabs(alpha) * terms + fabs(beta * p->y0[i]);
        worst_consider(&worst, fabs(p->y[i] - want), p->tolerance * (double)(n + 3) * DBL_EPSILON * scale);
    }
    return worst_report(&worst, max_error, bound);
}
