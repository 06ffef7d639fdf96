/* Harness of problem `dgemm`: C = A * B for n x n row-major doubles, C overwritten.
 *
 * Inputs are uniform in [-1, 1), so |sum_k a_ik b_kj| <= n and the rigorous rounding-error bound of
 * any summation order (with or without FMA) is n * eps * n per element. Up to full_check_max_n every
 * element is compared with the reference; above, Freivalds' check with two random vectors r compares
 * C r with A (B r) in O(n^2). Its rigorous bound (4 n^3 eps per row) would hide single-precision
 * accumulation at n = 2048, so it uses n^2.5 eps instead: rounding errors of a length-n sum grow
 * like sqrt(n) in practice (about 1000x below this bound at n = 512 for every order we tried).
 * The check vectors come from getrandom() after the output is snapshot: a C fixed before they exist
 * passes them only if C r = A (B r) holds for vectors it could not know (a rank-2 C built for
 * predicted vectors fails).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

typedef void (*dgemm_fn)(int n, const double *A, const double *B, double *C);
const char problem_entry[] = "dgemm";

struct problem {
    long n, full_check_max_n;
    double tolerance;
    double *A, *B, *C;          /* shared with the candidate */
    double *a, *b, *c, *scratch; /* private: inputs as we wrote them, output as it was at return */
};

problem *problem_setup(const problem_params *params) {
    size_t n = (size_t)params->n, bytes = n * n * sizeof(double);
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = params->n;
    p->full_check_max_n = params->full_check_max_n;
    p->tolerance = params->tolerance;
    p->A = input_buffer(bytes, "A", (void **)&p->a);
    p->B = input_buffer(bytes, "B", (void **)&p->b);
    p->C = output_buffer(bytes, "C", GARBAGE_NAN, (void **)&p->c);
    p->scratch = malloc(bytes > 6 * n * sizeof(double) ? bytes : 6 * n * sizeof(double));
    if (!p->A || !p->B || !p->C || !p->scratch) return NULL;
    return p;
}

void problem_fill(problem *p) {
    size_t count = (size_t)(p->n * p->n);
    random_fill(p->a, count);
    random_fill(p->b, count);
}

void problem_call(problem *p, entry_point entry) { ((dgemm_fn)entry)((int)p->n, p->A, p->B, p->C); }

/* Reference product into `out` (i-k-j order: vectorizable, no candidate code involved). */
static void reference(long n, const double *a, const double *b, double *out) {
    memset(out, 0, (size_t)(n * n) * sizeof(double));
    for (long i = 0; i < n; i++)
        for (long k = 0; k < n; k++) {
            double aik = a[i * n + k];
            for (long j = 0; j < n; j++) out[i * n + j] += aik * b[k * n + j];
        }
}

int problem_verify(problem *p, double *max_error, double *bound) {
    long n = p->n;
    double err = 0.0;
    if (n <= p->full_check_max_n) {
        *bound = p->tolerance * (double)n * (double)n * DBL_EPSILON;
        reference(n, p->a, p->b, p->scratch);
        for (long i = 0; i < n * n; i++) err = worse_error(fabs(p->c[i] - p->scratch[i]), err);
    } else {
        *bound = p->tolerance * (double)n * (double)n * sqrt((double)n) * DBL_EPSILON;
        /* Two random vectors r, s in one pass over each matrix (the checks are memory-bound). */
        double *r = p->scratch, *s = r + n, *br = s + n, *bs = br + n, *cr = bs + n, *cs = cr + n;
        random_draw(r, 2 * (size_t)n); /* r and s, drawn now that the output is fixed */
        for (long i = 0; i < n; i++) {
            const double *brow = p->b + i * n, *crow = p->c + i * n;
            double sbr = 0.0, sbs = 0.0, scr = 0.0, scs = 0.0;
            for (long j = 0; j < n; j++) {
                sbr += brow[j] * r[j];
                sbs += brow[j] * s[j];
                scr += crow[j] * r[j];
                scs += crow[j] * s[j];
            }
            br[i] = sbr, bs[i] = sbs, cr[i] = scr, cs[i] = scs;
        }
        for (long i = 0; i < n; i++) {
            const double *arow = p->a + i * n;
            double abr = 0.0, abs_ = 0.0;
            for (long k = 0; k < n; k++) {
                abr += arow[k] * br[k];
                abs_ += arow[k] * bs[k];
            }
            err = worse_error(fabs(cr[i] - abr), err);
            err = worse_error(fabs(cs[i] - abs_), err);
        }
    }
    *max_error = err;
    return err <= *bound; /* false for NaN */
}
