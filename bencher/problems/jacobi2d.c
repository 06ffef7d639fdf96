/* Harness of problem `jacobi2d`: one Jacobi sweep of the 5-point Laplace stencil on an n x n grid.
 *
 * out[i][j] = 0.25 * (in[i-1][j] + in[i+1][j] + in[i][j-1] + in[i][j+1]) for 0 < i, j < n-1;
 * the boundary rows and columns of out are copied from in. Inputs are in [-1, 1), so an interior
 * value summed in any order is within 4 eps of the reference (4 operands of magnitude <= 1, scaled
 * by an exact 0.25); boundary values must be exact. Always a full comparison: it is O(n^2).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

typedef void (*jacobi2d_fn)(int n, const double *in, double *out);
const char problem_entry[] = "jacobi2d";

struct problem {
    long n;
    double tolerance;
    double *IN, *OUT; /* shared with the candidate */
    double *in, *out; /* private */
};

problem *problem_setup(const problem_params *params) {
    size_t n = (size_t)params->n, bytes = n * n * sizeof(double);
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = params->n;
    p->tolerance = params->tolerance;
    p->IN = input_buffer(bytes, "in", (void **)&p->in);
    p->OUT = output_buffer(bytes, "out", GARBAGE_NAN, (void **)&p->out);
    if (!p->IN || !p->OUT) return NULL;
    return p;
}

void problem_fill(problem *p) { random_fill(p->in, (size_t)(p->n * p->n)); }

void problem_call(problem *p, entry_point entry) { ((jacobi2d_fn)entry)((int)p->n, p->IN, p->OUT); }

int problem_verify(problem *p, double *max_error, double *bound) {
    long n = p->n;
    const double *u = p->in;
    double err = 0.0;
    *bound = p->tolerance * 4.0 * DBL_EPSILON;
    for (long i = 0; i < n; i++)
        for (long j = 0; j < n; j++) {
            int edge = i == 0 || j == 0 || i == n - 1 || j == n - 1;
            double want = edge ? u[i * n + j]
                               : 0.25 * (u[(i - 1) * n + j] + u[(i + 1) * n + j] + u[i * n + j - 1] + u[i * n + j + 1]);
            double e = fabs(p->out[i * n + j] - want);
            if (isnan(e) || e > err) err = e;
        }
    *max_error = err;
    return err <= *bound;
}
