/* Harness of problem `stencil3d`: one sweep of the 7-point stencil on an n x n x n grid, out overwritten.
 *
 * out[i][j][k] = 0.4 * in[i][j][k] + 0.1 * (the sum of its six face neighbours) for 0 < i, j, k < n-1; the
 * boundary points of out are copied from in and must be exact. Inputs are uniform in [-1, 1), multiples of
 * 2^-52 (no product underflows). Error bound of interior point p, with M_p = 0.4 |in_p| + 0.1 sum |neighbours|:
 *     |out_p - reference_p| <= tolerance * 8 * eps * M_p.
 * Why: however a candidate orders the six additions and the two scalings (0.1 applied to the sum or to each
 * term, 0.4 x as 4 * (0.1 x), with or without FMA), each of the seven terms passes through at most seven
 * roundings, so it is within 7 u M_p of the exact value (u = eps / 2) up to second-order terms; so is the
 * reference (the same formula in double), so the two are within 7 eps M_p, and the eighth eps M_p covers the
 * second-order terms and the rounding of M_p itself. Every point is compared: the check is O(n^3), as the
 * sweep is.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "monitor.h"

typedef void (*stencil3d_fn)(int n, const double *in, double *out);
const char problem_entry[] = "stencil3d";

#define CENTRE 0.4    /* weight of the point itself */
#define NEIGHBOUR 0.1 /* weight of each of its six face neighbours */

struct problem {
    long n;
    double tolerance;
    double *IN, *OUT; /* shared with the candidate */
    double *in, *out; /* private: in as we wrote it, out as returned */
};

problem *problem_setup(const problem_params *params) {
    size_t n = (size_t)params->n, bytes = n * n * n * sizeof(double);
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = params->n;
    p->tolerance = params->tolerance;
    p->IN = input_buffer(bytes, "in", (void **)&p->in);
    p->OUT = output_buffer(bytes, "out", GARBAGE_NAN, (void **)&p->out);
    if (!p->IN || !p->OUT) return NULL;
    return p;
}

void problem_fill(problem *p) { random_fill(p->in, (size_t)(p->n * p->n * p->n)); }

void problem_call(problem *p, entry_point entry) { ((stencil3d_fn)entry)((int)p->n, p->IN, p->OUT); }

int problem_verify(problem *p, double *max_error, double *bound) {
    long n = p->n, plane = n * n;
    const double *u = p->in;
    double scale = p->tolerance * 8.0 * DBL_EPSILON;
    worst_element worst = WORST_NONE;
    for (long i = 0; i < n; i++)
        for (long j = 0; j < n; j++) {
            long row = i * plane + j * n;
            int edge = i == 0 || j == 0 || i == n - 1 || j == n - 1;
            for (long k = 0; k < n; k++) {
                long at = row + k;
                if (edge || k == 0 || k == n - 1) {
                    worst_consider(&worst, fabs(p->out[at] - u[at]), 0.0); /* boundary: copied exactly */
                    continue;
                }
                double sum = u[at - plane] + u[at + plane] + u[at - n] + u[at + n] + u[at - 1] + u[at + 1];
                double magnitude = fabs(u[at - plane]) + fabs(u[at + plane]) + fabs(u[at - n]) + fabs(u[at + n]) +
                                   fabs(u[at - 1]) + fabs(u[at + 1]);
                double want = CENTRE * u[at] + NEIGHBOUR * sum;
                worst_consider(&worst, fabs(p->out[at] - want), scale * (CENTRE * fabs(u[at]) + NEIGHBOUR * magnitude));
            }
        }
    return worst_report(&worst, max_error, bound);
}
