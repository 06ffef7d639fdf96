/* Harness of problem `sort_doubles`: n doubles sorted ascending in place.
 *
 * The values are uniform in [-1, 1) (never NaN, never -0.0, so equal values are equal bit for bit and the
 * order among them cannot matter), and one position in eight then takes the value of another random position:
 * an input with duplicates, fresh every call, so a kernel that drops or repeats elements (dedup, a sorted
 * copy of other data, the minimum everywhere) returns sorted data that is not a permutation of the input.
 * The check is exact: every element equals the monitor's own sort (qsort) of the initial values, O(n log n)
 * in the monitor, bit for bit; the error reported is the number of elements that differ (verify_exact).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

#define DUPLICATE_EVERY 8 /* one position in DUPLICATE_EVERY copies another's value */

typedef void (*sort_doubles_fn)(size_t n, double *x);
const char problem_entry[] = "sort_doubles";

struct problem {
    size_t n;
    double *X;               /* shared with the candidate */
    double *initial, *after; /* private: the values as we wrote them, and as the call left them */
    double *sorted;          /* scratch: the reference */
    int *pairs;              /* scratch: positions of the duplicates, (to, from) */
};

problem *problem_setup(const problem_params *params) {
    problem *p = calloc(1, sizeof *p);
    if (!p || params->n > INT_MAX) return NULL; /* random_ints draws the duplicates' positions as ints */
    p->n = (size_t)params->n;
    p->X = inout_buffer(p->n * sizeof(double), "x", (void **)&p->initial, (void **)&p->after);
    p->sorted = malloc(p->n * sizeof(double));
    p->pairs = malloc((2 * (p->n / DUPLICATE_EVERY) + 1) * sizeof(int));
    if (!p->X || !p->sorted || !p->pairs) return NULL;
    return p;
}

void problem_fill(problem *p) {
    size_t duplicates = p->n / DUPLICATE_EVERY;
    random_fill(p->initial, p->n);
    random_ints(p->pairs, 2 * duplicates, (int)p->n);
    for (size_t k = 0; k < duplicates; k++) p->initial[p->pairs[2 * k]] = p->initial[p->pairs[2 * k + 1]];
}

void problem_call(problem *p, entry_point entry) { ((sort_doubles_fn)entry)(p->n, p->X); }

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int problem_verify(problem *p, double *max_error, double *bound) {
    memcpy(p->sorted, p->initial, p->n * sizeof(double));
    qsort(p->sorted, p->n, sizeof(double), ascending);
    size_t mismatches = 0;
    for (size_t i = 0; i < p->n; i++) mismatches += memcmp(&p->after[i], &p->sorted[i], sizeof(double)) != 0;
    return verify_exact(mismatches, max_error, bound);
}
