/* Harness of problem `histogram`: counts of n ints into 256 bins, bins overwritten.
 *
 * The data are uniform in [0, 256), fresh every call, so each bin holds about n / 256 with a spread of
 * sqrt(n / 256): counts guessed from the distribution, or from part of the data, miss by far more than 0.
 * The counts are integers: every bin is compared exactly with the monitor's own count of the private copy,
 * O(n) like the kernel. The bins start as random bytes every call, so a kernel that adds to them without
 * clearing them first is wrong. The error reported is the number of bins that differ (verify_exact).
 */
#include <stdlib.h>

#include "monitor.h"

#define BIN_COUNT 256

typedef void (*histogram_fn)(size_t n, const int *data, int *bins);
const char problem_entry[] = "histogram";

struct problem {
    size_t n;
    int *DATA, *BINS; /* shared with the candidate */
    int *data, *bins;  /* private */
};

problem *problem_setup(const problem_params *params) {
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = (size_t)params->n;
    p->DATA = input_buffer(p->n * sizeof(int), "data", (void **)&p->data);
    p->BINS = output_buffer(BIN_COUNT * sizeof(int), "bins", GARBAGE_RANDOM, (void **)&p->bins);
    if (!p->DATA || !p->BINS) return NULL;
    return p;
}

void problem_fill(problem *p) { random_ints(p->data, p->n, BIN_COUNT); }

void problem_call(problem *p, entry_point entry) { ((histogram_fn)entry)(p->n, p->DATA, p->BINS); }

int problem_verify(problem *p, double *max_error, double *bound) {
    long count[BIN_COUNT] = {0};
    for (size_t i = 0; i < p->n; i++) count[p->data[i]]++;
    size_t mismatches = 0;
    for (int b = 0; b < BIN_COUNT; b++) mismatches += p->bins[b] != count[b];
    return verify_exact(mismatches, max_error, bound);
}
