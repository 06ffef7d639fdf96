/* Harness of problem `spmv_csr`: y = A x for an n x n sparse matrix in CSR form, y overwritten.
 *
 * Every repetition draws a new matrix: exactly 16 n nonzeros, row lengths with a heavy tail (Lomax with
 * shape 2: about 11% of the rows empty, the longest near 16 sqrt(n), each at most n), and in each row
 * distinct columns in increasing order, one uniform in each of `length` equal strata of [0, n) (so
 * generating them needs no sort). Values and x are uniform in [-1, 1), multiples of 2^-52: no product
 * underflows.
 * Error bound of row i, of length L_i, with P_i = sum_k |val_k x_col_k|:
 *     |y_i - reference_i| <= tolerance * (L_i + 1) * eps * P_i.
 * Why: a dot product of length L evaluated in any order, with or without FMA, is within L u P of the exact
 * value (u = eps / 2; Jeannerod and Rump, SIAM J. Matrix Anal. Appl. 34(2), 2013); the candidate and the
 * reference (double, in order) together are within L eps P, and the extra eps P covers the rounding of P
 * itself (relative L u) for any row shorter than 10^7. An empty row must be exactly 0. Single-precision
 * accumulation fails by orders of magnitude. Every row is compared: the check reads the matrix once, as the
 * kernel must.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "monitor.h"

typedef void (*spmv_csr_fn)(int n, const int *row_ptr, const int *col_idx, const double *val, const double *x,
                            double *y);
const char problem_entry[] = "spmv_csr";

#define NONZEROS_PER_ROW 16 /* on average: nnz = 16 n */
#define LENGTH_SCALE 16.5   /* Lomax scale: floor(16.5 (u^-1/2 - 1)) has a mean near 16 */
#define RANDOM_BITS 30      /* random_ints below 2^30: a uniform in (0, 1), or a place in a column stratum */
#define PICKS 4096          /* random rows drawn at a time when the total is adjusted */

struct problem {
    long n, nnz;
    double tolerance;
    int *ROW_PTR, *COL_IDX; /* shared with the candidate */
    double *VAL, *X, *Y;
    int *row_ptr, *col_idx; /* private: inputs as we wrote them, y as returned */
    double *val, *x, *y;
    int *picks; /* scratch: random rows for the adjustment of the row lengths */
};

problem *problem_setup(const problem_params *params) {
    size_t n = (size_t)params->n, nnz = NONZEROS_PER_ROW * n;
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = params->n;
    p->nnz = (long)nnz;
    p->tolerance = params->tolerance;
    p->ROW_PTR = input_buffer((n + 1) * sizeof(int), "row_ptr", (void **)&p->row_ptr);
    p->COL_IDX = input_buffer(nnz * sizeof(int), "col_idx", (void **)&p->col_idx);
    p->VAL = input_buffer(nnz * sizeof(double), "val", (void **)&p->val);
    p->X = input_buffer(n * sizeof(double), "x", (void **)&p->x);
    p->Y = output_buffer(n * sizeof(double), "y", GARBAGE_NAN, (void **)&p->y);
    p->picks = malloc(PICKS * sizeof(int));
    /* 16 n distinct (row, column) pairs need n >= 16. */
    if (n < NONZEROS_PER_ROW || !p->ROW_PTR || !p->COL_IDX || !p->VAL || !p->X || !p->Y || !p->picks) return NULL;
    return p;
}

/* Row lengths into length[0..n): heavy-tailed, each in [0, n], summing to exactly nnz. */
static void draw_row_lengths(problem *p, int *length) {
    long n = p->n, total = 0;
    random_ints(length, (size_t)n, 1 << RANDOM_BITS);
    for (long i = 0; i < n; i++) {
        double u = ((double)length[i] + 0.5) / (double)(1 << RANDOM_BITS); /* in (0, 1) */
        double drawn = floor(LENGTH_SCALE * (1.0 / sqrt(u) - 1.0));
        length[i] = drawn < (double)n ? (int)drawn : (int)n;
        total += length[i];
    }
    /* One nonzero at a time to or from random rows until the total is exact: about sqrt(n) steps at large n,
     * the mass that the cap of n cut off at small n. Empty rows stay empty and no row empties, unless a whole
     * batch of picks finds no other row to grow. */
    int grow_empty = 0;
    while (total != p->nnz) {
        int moved = 0;
        random_ints(p->picks, PICKS, (int)n);
        for (int k = 0; k < PICKS && total != p->nnz; k++) {
            int *row = &length[p->picks[k]];
            if (total < p->nnz && *row < n && (*row > 0 || grow_empty)) ++*row, ++total, moved = 1;
            else if (total > p->nnz && *row > 1) --*row, --total, moved = 1;
        }
        grow_empty = !moved;
    }
}

void problem_fill(problem *p) {
    long n = p->n;
    int *row_ptr = p->row_ptr;
    draw_row_lengths(p, row_ptr + 1);
    row_ptr[0] = 0;
    for (long i = 0; i < n; i++) row_ptr[i + 1] += row_ptr[i];
    /* Column k of a row of length L: uniform in the k-th of L strata of [0, n) whose widths differ by at most
     * one (Bresenham: one division per row), so the columns are distinct and increasing. */
    random_ints(p->col_idx, (size_t)p->nnz, 1 << RANDOM_BITS);
    for (long i = 0; i < n; i++) {
        long length = row_ptr[i + 1] - row_ptr[i], start = 0, carry = 0;
        if (length == 0) continue;
        long width = n / length, extra = n % length;
        for (int *col = p->col_idx + row_ptr[i], *end = p->col_idx + row_ptr[i + 1]; col < end; col++) {
            long wide = width + ((carry += extra) >= length ? (carry -= length, 1) : 0);
            *col = (int)(start + (long)((uint64_t)*col * (uint64_t)wide >> RANDOM_BITS));
            start += wide;
        }
    }
    random_fill(p->val, (size_t)p->nnz);
    random_fill(p->x, (size_t)n);
}

void problem_call(problem *p, entry_point entry) {
    ((spmv_csr_fn)entry)((int)p->n, p->ROW_PTR, p->COL_IDX, p->VAL, p->X, p->Y);
}

int problem_verify(problem *p, double *max_error, double *bound) {
    worst_element worst = WORST_NONE;
    for (long i = 0; i < p->n; i++) {
        double sum = 0.0, magnitude = 0.0;
        for (long k = p->row_ptr[i]; k < p->row_ptr[i + 1]; k++) {
            double term = p->val[k] * p->x[p->col_idx[k]];
            sum += term;
            magnitude += fabs(term);
        }
        long length = p->row_ptr[i + 1] - p->row_ptr[i];
        worst_consider(&worst, fabs(p->y[i] - sum), p->tolerance * (double)(length + 1) * DBL_EPSILON * magnitude);
    }
    return worst_report(&worst, max_error, bound);
}
