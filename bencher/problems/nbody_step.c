/* Harness of problem `nbody_step`: one explicit Euler step of n bodies under softened gravity (G = 1).
 *
 * a_i = sum over j != i of m_j (p_j - p_i) / (|p_j - p_i|^2 + EPS2)^(3/2); new_vel = vel + dt a;
 * new_pos = pos + dt new_vel. Positions and velocities are uniform in [-1, 1), masses in (0, 1], dt in
 * [1e-3, 1e-2], all fresh each repetition (dt travels in a shared buffer: the candidate's process is a copy
 * of this one made before the first fill, so a value kept in `struct problem` would never reach it).
 *
 * Bound, per component c of body i, with S = sum_j |m_j (p_j - p_i)_c| / d_ij^3 (u = 2^-53, eps = 2u):
 * - each term: the difference p_j - p_i rounds once, relative to itself; |d|^2 + EPS2 (a sum of non-negative
 *   terms) errs by at most 6u relative; the power -3/2 by sqrt, a product and a division, or pow, or 1/sqrt
 *   cubed, and the products with m_j and the difference, by at most 24u relative in every order we know of,
 *   with or without FMA, and with the vectorised libm (4 ulp). Each term is within 24u of its own magnitude.
 * - the sum of n - 1 terms in any order adds at most (n - 1) u S (Higham, 3.1), so the candidate's a_c is
 *   within (n + 24) u S of the exact value, and our reference (the same computation in double) too: the
 *   acceleration's bound is B = (n + 32) eps S, which covers both.
 * - new_vel: dt B, plus the rounding of dt a and of the addition in both (2 eps (|vel| + dt S));
 *   new_pos: dt times that, plus 2 eps (|pos| + dt (|vel| + dt S)).
 * The bound is rigorous for these methods (the worst component measured half of it at n = 127, in 300
 * repetitions), and an approximate reciprocal square root refined by two Newton steps in double passes too.
 * Single precision anywhere, or _mm256_rsqrt_ps (12 bits) even after one Newton step, errs by far more (at
 * n = 2003 the bound is 4.5e-13 S; a float term alone errs by 6e-8 of itself). Every component of both outputs
 * is compared; the reference is O(n^2) like the kernel.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

typedef void (*nbody_step_fn)(int n, double dt, const double *pos, const double *vel, const double *mass,
                              double *new_pos, double *new_vel);
const char problem_entry[] = "nbody_step";

#define EPS2 0.01          /* softening, in the denominator */
#define DT_MIN 1e-3        /* dt is uniform in [DT_MIN, DT_MAX) */
#define DT_MAX 1e-2
#define TERM_ROUNDINGS 32  /* the n + 32 of the acceleration's bound (see above) */

struct problem {
    long n;
    double tolerance;
    double *POS, *VEL, *MASS, *DT, *NEW_POS, *NEW_VEL; /* shared with the candidate */
    double *pos, *vel, *mass, *dt, *new_pos, *new_vel; /* private: inputs as we wrote them, outputs at return */
    double *acc, *magnitude;                           /* the reference's accelerations and sums of |terms| */
};

problem *problem_setup(const problem_params *params) {
    size_t n = (size_t)params->n, vectors = 3 * n * sizeof(double);
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = params->n;
    p->tolerance = params->tolerance;
    p->POS = input_buffer(vectors, "pos", (void **)&p->pos);
    p->VEL = input_buffer(vectors, "vel", (void **)&p->vel);
    p->MASS = input_buffer(n * sizeof(double), "mass", (void **)&p->mass);
    p->DT = input_buffer(sizeof(double), "dt", (void **)&p->dt);
    p->NEW_POS = output_buffer(vectors, "new_pos", GARBAGE_NAN, (void **)&p->new_pos);
    p->NEW_VEL = output_buffer(vectors, "new_vel", GARBAGE_NAN, (void **)&p->new_vel);
    p->acc = malloc(vectors);
    p->magnitude = malloc(vectors);
    if (!p->POS || !p->VEL || !p->MASS || !p->DT || !p->NEW_POS || !p->NEW_VEL || !p->acc || !p->magnitude)
        return NULL;
    return p;
}

void problem_fill(problem *p) {
    size_t n = (size_t)p->n;
    random_fill(p->pos, 3 * n);
    random_fill(p->vel, 3 * n);
    random_fill(p->mass, n);
    for (size_t j = 0; j < n; j++) p->mass[j] = 0.5 * (1.0 - p->mass[j]); /* [-1, 1) -> (0, 1], exactly */
    random_fill(p->dt, 1);
    p->dt[0] = DT_MIN + 0.5 * (p->dt[0] + 1.0) * (DT_MAX - DT_MIN);
}

void problem_call(problem *p, entry_point entry) {
    ((nbody_step_fn)entry)((int)p->n, p->DT[0], p->POS, p->VEL, p->MASS, p->NEW_POS, p->NEW_VEL);
}

/* The accelerations into acc (3n) and the sums of |terms| of their bounds into magnitude (3n), each pair once
 * (Newton's third law: the pair's factor f d serves both bodies, which halves the square roots and divisions). */
static void reference(const problem *p, double *acc, double *magnitude) {
    long n = p->n;
    const double *pos = p->pos, *mass = p->mass;
    memset(acc, 0, 3 * (size_t)n * sizeof(double));
    memset(magnitude, 0, 3 * (size_t)n * sizeof(double));
    for (long i = 0; i < n; i++)
        for (long j = i + 1; j < n; j++) {
            double d[3] = {pos[3 * j] - pos[3 * i], pos[3 * j + 1] - pos[3 * i + 1], pos[3 * j + 2] - pos[3 * i + 2]};
            double d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + EPS2, f = 1.0 / (d2 * sqrt(d2));
            for (int c = 0; c < 3; c++) {
                double t = f * d[c]; /* p_j - p_i for body i, exactly its negation for body j */
                acc[3 * i + c] += mass[j] * t;
                acc[3 * j + c] -= mass[i] * t;
                magnitude[3 * i + c] += mass[j] * fabs(t);
                magnitude[3 * j + c] += mass[i] * fabs(t);
            }
        }
}

int problem_verify(problem *p, double *max_error, double *bound) {
    long n = p->n;
    const double *pos = p->pos, *vel = p->vel, *acc = p->acc, *magnitude = p->magnitude, dt = p->dt[0];
    double scale = p->tolerance * DBL_EPSILON, terms = (double)n + TERM_ROUNDINGS;
    worst_element worst = WORST_NONE;
    reference(p, p->acc, p->magnitude);
    for (long k = 0; k < 3 * n; k++) {
        double s = magnitude[k], v = vel[k] + dt * acc[k], x = pos[k] + dt * v;
        double bound_v = dt * terms * s * scale + 2.0 * scale * (fabs(vel[k]) + dt * s);
        double bound_x = dt * bound_v + 2.0 * scale * (fabs(pos[k]) + dt * (fabs(vel[k]) + dt * s));
        worst_consider(&worst, fabs(p->new_vel[k] - v), bound_v);
        worst_consider(&worst, fabs(p->new_pos[k] - x), bound_x);
    }
    return worst_report(&worst, max_error, bound);
}
