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

/* `count` values uniform in [-1, 1): eight xorshift64* lanes keyed by 512 fresh bits from getrandom
 * (fast, vectorizes). The lanes' states can be read back from the output, which is harmless: the key
 * is used for this one buffer only. For the candidate's inputs. */
void random_fill(double *out, size_t count);
/* `count` values uniform in [-1, 1) straight from getrandom: for the vectors of a probabilistic check,
 * drawn only after the candidate's output is copied to private memory. */
void random_draw(double *out, size_t count);

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

/* Allocate buffers: those the candidate sees through `shared_alloc` (shared with the child),
 * private copies with plain malloc. Returns NULL when memory is short. */
problem *problem_setup(const problem_params *params, void *(*shared_alloc)(size_t bytes));
/* Fresh random inputs (shared buffers and private copies) and NaN in every output element. */
void problem_fill(problem *p);
/* In the child: call the candidate's entry point on the shared buffers. */
void problem_call(problem *p, entry_point entry);
/* Copy the shared outputs to private memory: what is verified is what was there at return. */
void problem_snapshot(problem *p);
/* Verify the snapshot against the private inputs. Sets the largest error and the bound it had
 * to stay within; returns 1 when correct (NaN and Inf are never correct). */
int problem_verify(problem *p, double *max_error, double *bound);

#endif
