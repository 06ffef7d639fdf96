/* Harness of problem `transpose`: B = A^T for n x n row-major doubles, B overwritten.
 *
 * A transpose moves values without arithmetic, so every element of B must equal its element of A exactly
 * (verify_exact; a NaN, the garbage of an unwritten element, is never equal). The check compares all of B,
 * tile by tile so that both matrices are read at memory speed.
 */
#include <stdlib.h>

#include "monitor.h"

typedef void (*transpose_fn)(int n, const double *A, double *B);
const char problem_entry[] = "transpose";

#define TILE 32 /* the check's tile: 2 x 32 rows of 256 bytes stay in L1 */

struct problem {
    long n;
    double *A, *B; /* shared with the candidate */
    double *a, *b; /* private: A as we wrote it, B as returned */
};

problem *problem_setup(const problem_params *params) {
    size_t n = (size_t)params->n, bytes = n * n * sizeof(double);
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = params->n;
    p->A = input_buffer(bytes, "A", (void **)&p->a);
    p->B = output_buffer(bytes, "B", GARBAGE_NAN, (void **)&p->b);
    if (!p->A || !p->B) return NULL;
    return p;
}

void problem_fill(problem *p) { random_fill(p->a, (size_t)(p->n * p->n)); }

void problem_call(problem *p, entry_point entry) { ((transpose_fn)entry)((int)p->n, p->A, p->B); }

int problem_verify(problem *p, double *max_error, double *bound) {
    long n = p->n;
    size_t mismatches = 0;
    for (long i0 = 0; i0 < n; i0 += TILE)
        for (long j0 = 0; j0 < n; j0 += TILE)
            for (long i = i0; i < i0 + TILE && i < n; i++)
                for (long j = j0; j < j0 + TILE && j < n; j++) mismatches += !(p->b[j * n + i] == p->a[i * n + j]);
    return verify_exact(mismatches, max_error, bound);
}
