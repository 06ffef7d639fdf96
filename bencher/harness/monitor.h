/* The interface between the generic monitor (monitor.c) and one problem's harness (dgemm.c, ...).
 *
 * The monitor is the trusted half of a benchmark run: it owns the clock, the random inputs, the
 * verification and the result channel. The candidate runs in a forked child that shares only the
 * problem's input/output buffers with it, so nothing the candidate does in its own address space
 * can reach the monitor's timings, random state or verdict.
 */
#ifndef HPCRL_MONITOR_H
#define HPCRL_MONITOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_t; /* xoshiro256**, seeded from getrandom() after the fork */

double rng_uniform(rng_t *rng); /* uniform in [-1, 1) */
/* `count` values uniform in [-1, 1), fast: eight xorshift64* lanes seeded from `rng` (vectorizes),
 * so refreshing the inputs of every call costs little next to the call itself. */
void rng_fill(rng_t *rng, double *out, size_t count);

typedef struct {
    long n;
    long full_check_max_n; /* full comparison against the reference up to this size */
    double tolerance;      /* multiplier of the problem's rigorous rounding-error bound */
} problem_params;

typedef struct problem problem; /* defined by each problem's harness */

/* Allocate buffers: those the candidate sees through `shared_alloc` (shared with the child),
 * private copies with plain malloc. Returns NULL when memory is short. */
problem *problem_setup(const problem_params *params, void *(*shared_alloc)(size_t bytes));
/* Fresh random inputs (shared buffers and private copies) and NaN in every output element. */
void problem_fill(problem *p, rng_t *rng);
/* In the child: call the candidate's entry point on the shared buffers. */
void problem_call(problem *p);
/* Copy the shared outputs to private memory: what is verified is what was there at return. */
void problem_snapshot(problem *p);
/* Verify the snapshot against the private inputs. Sets the largest error and the bound it had
 * to stay within; returns 1 when correct (NaN and Inf are never correct). */
int problem_verify(problem *p, rng_t *rng, double *max_error, double *bound);

#endif
