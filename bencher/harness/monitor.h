/* The interface between the generic monitor (monitor.c) and one problem's harness (dgemm.c, ...).
 *
 * The monitor is the trusted half of a benchmark run: it owns the clock, the random inputs, the
 * verification and the result channel. The candidate is a shared object that only a forked child
 * loads, after that child has closed everything of the monitor's it must not reach; the two processes
 * share only the problem's input/output buffers. No candidate code (constructor, ifunc resolver, entry
 * point) ever runs in the monitor's process.
 */
#ifndef HPCRL_MONITOR_H
#define HPCRL_MONITOR_H

#include <stddef.h>
#include <stdint.h>

/* Randomness. Every value the candidate sees, and every value that checks it, comes from a fresh key
 * drawn from the kernel (getrandom) at the moment it is needed, in the monitor's process only: no
 * generator state survives from one buffer to the next, so a buffer the candidate reads reveals
 * nothing about a later buffer or a check vector. */

/* `count` values uniform in [-1, 1): eight xorshift64* lanes keyed by 512 fresh bits from getrandom (fast,
 * vectorizes), with one value in 16 changed by a second stream of its own key at positions no buffer shows.
 * The first stream's lanes can be read back from 16 values; without the changes, a candidate could then
 * regenerate its input instead of reading it (monitor.c, FILL_WITH_STREAM). Each key serves one buffer only.
 * For the candidate's inputs. */
void random_fill(double *out, size_t count);
/* `count` values uniform in [-1, 1) straight from getrandom: for the vectors of a probabilistic check,
 * drawn only after the candidate's output is copied to private memory. */
void random_draw(double *out, size_t count);

/* The same as random_fill for floats, and `count` integers uniform in [0, below) (below >= 1), and `bytes`
 * random bytes: each call with a key of its own. */
void random_fill_float(float *out, size_t count);
void random_ints(int *out, size_t count, int below);
void random_bytes_fill(void *out, size_t bytes);

typedef struct {
    long n;
    long full_check_max_n; /* full comparison against the reference up to this size */
    double tolerance;      /* multiplier of the problem's rigorous rounding-error bound */
} problem_params;

typedef struct problem problem; /* defined by each problem's harness */

/* The candidate's entry point: the harness names it, the child looks it up in the candidate's library
 * and hands it to problem_call as an untyped function pointer. */
typedef void (*entry_point)(void);
extern const char problem_entry[];

/* Buffers the candidate sees. A harness allocates every buffer of its entry point's arguments through these
 * in problem_setup; the monitor owns them from then on, so no harness can forget a check:
 * - an input: the harness writes its private copy in problem_fill; before each call the monitor copies it to
 *   the shared buffer, and after the call it compares the two bytewise: a candidate that writes to an input
 *   (to scratch space, or to undo its own work) fails with wrong_answer, naming the input.
 * - an output: before each call the monitor fills the shared buffer with garbage of the given kind (NaN in
 *   every element, or random bytes for integers), so an element the candidate does not write is wrong;
 *   after the call it copies the buffer to the private snapshot that problem_verify reads.
 * - an in-out buffer (a sort in place, y = alpha A x + beta y): the harness writes `initial` in problem_fill,
 *   the monitor copies it in before the call and the result out to `snapshot` after it.
 * `name` appears in verdict details. Each returns the private pointer(s) through the out-parameters and
 * the shared buffer as its value (NULL when memory is short); the shared buffer starts 64-byte aligned,
 * with an inaccessible guard page behind it and before it, and the few writable bytes between it and the
 * guards checked after every call (a write just past an end is wrong_answer). */
typedef enum {
    GARBAGE_NAN,   /* doubles or floats: every bit set, so every element is a NaN */
    GARBAGE_RANDOM /* integers: fresh random bytes each call (any fixed value could be the answer) */
} garbage_kind;
void *input_buffer(size_t bytes, const char *name, void **copy);
void *output_buffer(size_t bytes, const char *name, garbage_kind garbage, void **snapshot);
void *inout_buffer(size_t bytes, const char *name, void **initial, void **snapshot);

/* Exact comparisons (integers, copies, permutations): a harness counts the elements that differ from the
 * reference and reports the count through this, which also sets the bound the channel needs (records carry
 * positive bounds only: half a count, so one mismatch fails). Returns 1 when nothing differs. */
#define EXACT_BOUND 0.5
int verify_exact(size_t mismatches, double *max_error, double *bound);

/* Checking against a bound. `worse_error`: the running maximum of errors under one bound (a NaN, once seen,
 * stays). Bounds that differ by element go through a worst_element: worst_consider each element's error and
 * bound (0 for an element compared exactly), then worst_report gives problem_verify's result, the element
 * that came closest to its bound or furthest past it (a NaN error is the worst and stays). Inline: they run
 * once per output element. */
static inline double worse_error(double error, double current) {
    return (error != error || error > current) ? error : current; /* error != error: NaN */
}

typedef struct {
    double error, bound, ratio;
} worst_element;
#define WORST_NONE ((worst_element){0.0, 0.0, -1.0})

static inline void worst_consider(worst_element *worst, double error, double bound) {
    double ratio = error != error ? __builtin_inf() : bound > 0 ? error / bound : error > 0 ? __builtin_inf() : 0.0;
    if (ratio > worst->ratio && worst->error == worst->error) *worst = (worst_element){error, bound, ratio};
}

/* The channel takes positive bounds only: an exact element that is the worst reports the smallest double as
 * its bound, which any error but 0 exceeds. Returns 1 when correct (never for NaN). */
static inline int worst_report(const worst_element *worst, double *max_error, double *bound) {
    *max_error = worst->error;
    *bound = worst->bound > 0 ? worst->bound : __DBL_DENORM_MIN__;
    return worst->error <= worst->bound;
}

/* Scalars the candidate receives (alpha, dt) are drawn in problem_fill like any input, so they too go through
 * an input_buffer: problem_call runs in the candidate's process, which has a copy of the harness's memory
 * from before the first call, never the values problem_fill stores afterwards. */

/* Allocate the problem's buffers (through the three functions above) and any private scratch. Returns NULL
 * when memory is short. */
problem *problem_setup(const problem_params *params);
/* Fresh random inputs in the private copies of inputs and the initial values of in-out buffers. */
void problem_fill(problem *p);
/* In the child: call the candidate's entry point on the shared buffers. A returned scalar goes to an
 * output buffer of its own. */
void problem_call(problem *p, entry_point entry);
/* Verify the snapshots against the private inputs. Sets the largest error and the bound it had to stay
 * within (with bounds that differ by element: the error and bound of the element that came closest to or
 * furthest past its bound); returns 1 when correct (NaN and Inf are never correct). */
int problem_verify(problem *p, double *max_error, double *bound);

#endif
