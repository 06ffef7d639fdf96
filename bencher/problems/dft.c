/* Harness of problem `dft`: the forward discrete Fourier transform of n complex doubles, for any n.
 *
 * X_k = sum_j x_j e^(-2 pi i j k / n), x_j = re[j] + i im[j], X_k = re_out[k] + i im_out[k]. Inputs are uniform
 * in [-1, 1), fresh each repetition. Every bin is compared with a reference in long double (64-bit significand:
 * its own error is about 2^-11 of the bound below, and is neglected):
 * - up to full_check_max_n, the definition itself, twiddles e^(-2 pi i m / n) from the exact index m = j k mod n;
 * - at every size, Bluestein's algorithm: the chirp e^(i pi m^2 / n) from the exact index m^2 mod 2n, and a
 *   power-of-two FFT of size M >= 2n - 1 for the convolution, O(n log n). Below full_check_max_n the candidate
 *   is compared with both, so every test run checks this FFT against the definition.
 * Bound per bin: (n + 8) eps L1, L1 = sum_j (|re_j| + |im_j|) >= |X_k|. Rigorous for the definition with a table
 * of twiddles from libm (each within 20u of exact, u = 2^-53: cos and sin within an ulp of an argument
 * 2 pi m / n rounded three times), summed in any order with or without FMA: each term's part errs by at most
 * 22u (|re_j| + |im_j|), the n-term sum adds at most n u L1, and (n + 8) eps = (2n + 16) u covers n + 22 for
 * n >= 6. An FFT's error is of order log2(n) u ||x||_2 per bin, thousands of times below the bound at these
 * sizes (FFTW and a double-precision Bluestein measure below 4e-4 of it). Single-precision twiddles or sums
 * err by 1e-7 of a term and exceed it thousands of times over; twiddles from a recurrence w^(m+1) = w^m w drift
 * by about m ulps, the same way in every term, and exceed it (2x at n = 1009, 9x at 4096). Twiddles from the
 * unreduced argument 2 pi j k / n err by up to n ulps too, but in unrelated directions, and pass (0.08 of the
 * bound at n = 1009). An unwritten bin is a NaN.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "monitor.h"

typedef void (*dft_fn)(int n, const double *re, const double *im, double *re_out, double *im_out);
const char problem_entry[] = "dft";

#define BOUND_EXTRA_TERMS 8 /* the + 8 of (n + 8) eps L1 */

typedef struct {
    long double re, im;
} cplx;

static cplx times(cplx a, cplx b) { return (cplx){a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re}; }
static cplx conjugate(cplx a) { return (cplx){a.re, -a.im}; }
/* e^(i pi numerator / denominator), from the exact fraction (numerator reduced by the caller). */
static cplx turn(uint64_t numerator, uint64_t denominator) {
    long double angle = acosl(-1.0L) * (long double)numerator / (long double)denominator;
    return (cplx){cosl(angle), sinl(angle)};
}

struct problem {
    long n, full_check_max_n, size; /* size: Bluestein's power-of-two FFT length M */
    double tolerance;
    double *RE, *IM, *RE_OUT, *IM_OUT; /* shared with the candidate */
    double *re, *im, *re_out, *im_out; /* private: inputs as we wrote them, outputs as they were at return */
    cplx *twiddle;  /* definition: e^(-2 pi i m / n), m < n */
    cplx *chirp;    /* Bluestein: e^(i pi m^2 / n), m < n */
    cplx *kernel;   /* Bluestein: the FFT of the chirp, wrapped around to length M */
    cplx *roots;    /* the FFT's e^(-2 pi i k / M), k < M / 2 */
    cplx *work;     /* M elements */
};

/* In-place radix-2 FFT of length p->size (forward: e^(-2 pi i ...), or its inverse without the 1/M). */
static void fft(const problem *p, cplx *a, int inverse) {
    long m = p->size;
    for (long i = 1, j = 0; i < m; i++) { /* bit-reversal permutation */
        long bit = m >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            cplx swap = a[i];
            a[i] = a[j];
            a[j] = swap;
        }
    }
    for (long len = 2; len <= m; len <<= 1)
        for (long start = 0; start < m; start += len)
            for (long k = 0; k < len / 2; k++) {
                cplx w = p->roots[k * (m / len)];
                cplx u = a[start + k], v = times(a[start + k + len / 2], inverse ? conjugate(w) : w);
                a[start + k] = (cplx){u.re + v.re, u.im + v.im};
                a[start + k + len / 2] = (cplx){u.re - v.re, u.im - v.im};
            }
}

problem *problem_setup(const problem_params *params) {
    size_t n = (size_t)params->n, bytes = n * sizeof(double);
    problem *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = params->n;
    p->full_check_max_n = params->full_check_max_n;
    p->tolerance = params->tolerance;
    for (p->size = 1; p->size < 2 * p->n - 1; p->size <<= 1) continue;
    size_t m = (size_t)p->size;
    p->RE = input_buffer(bytes, "re", (void **)&p->re);
    p->IM = input_buffer(bytes, "im", (void **)&p->im);
    p->RE_OUT = output_buffer(bytes, "re_out", GARBAGE_NAN, (void **)&p->re_out);
    p->IM_OUT = output_buffer(bytes, "im_out", GARBAGE_NAN, (void **)&p->im_out);
    p->twiddle = malloc(n * sizeof(cplx));
    p->chirp = malloc(n * sizeof(cplx));
    p->kernel = calloc(m, sizeof(cplx));
    p->roots = malloc((m / 2 + 1) * sizeof(cplx));
    p->work = malloc(m * sizeof(cplx));
    if (!p->RE || !p->IM || !p->RE_OUT || !p->IM_OUT || !p->twiddle || !p->chirp || !p->kernel || !p->roots ||
        !p->work)
        return NULL;
    for (uint64_t k = 0; k < m / 2; k++) p->roots[k] = turn(2 * m - 2 * k, m); /* -2 pi k / M, as a positive turn */
    for (uint64_t j = 0; j < n; j++) {
        p->twiddle[j] = turn(j == 0 ? 0 : 2 * (n - j), n);
        p->chirp[j] = turn(j * j % (2 * n), n);
    }
    for (size_t j = 0; j < n; j++) p->kernel[j] = p->kernel[(m - j) % m] = p->chirp[j];
    fft(p, p->kernel, 0);
    return p;
}

void problem_fill(problem *p) {
    random_fill(p->re, (size_t)p->n);
    random_fill(p->im, (size_t)p->n);
}

void problem_call(problem *p, entry_point entry) { ((dft_fn)entry)((int)p->n, p->RE, p->IM, p->RE_OUT, p->IM_OUT); }

/* Bluestein: X_k = conj(c_k) sum_j (x_j conj(c_j)) c_(k-j), c_m = e^(i pi m^2 / n), as a cyclic convolution of
 * length M >= 2n - 1 (no wrap-around). Leaves X_k in p->work[k], k < n. */
static void reference_fft(problem *p) {
    long n = p->n, m = p->size;
    cplx *a = p->work;
    for (long j = 0; j < m; j++)
        a[j] = j < n ? times((cplx){p->re[j], p->im[j]}, conjugate(p->chirp[j])) : (cplx){0.0L, 0.0L};
    fft(p, a, 0);
    for (long k = 0; k < m; k++) a[k] = times(a[k], p->kernel[k]);
    fft(p, a, 1);
    for (long k = 0; k < n; k++) {
        cplx x = times(a[k], conjugate(p->chirp[k]));
        a[k] = (cplx){x.re / (long double)m, x.im / (long double)m};
    }
}

/* The definition at bin k, twiddles from the exact index j k mod n. */
static cplx reference_bin(const problem *p, long k) {
    long n = p->n;
    long double sr = 0.0L, si = 0.0L;
    for (long j = 0, m = 0; j < n; j++) {
        cplx t = times((cplx){p->re[j], p->im[j]}, p->twiddle[m]);
        sr += t.re;
        si += t.im;
        m += k; /* j k mod n, for the next j (k < n) */
        if (m >= n) m -= n;
    }
    return (cplx){sr, si};
}

static double bin_error(const problem *p, long k, cplx want) {
    return worse_error(fabs(p->re_out[k] - (double)want.re), fabs(p->im_out[k] - (double)want.im));
}

int problem_verify(problem *p, double *max_error, double *bound) {
    long n = p->n;
    long double l1 = 0.0L;
    for (long j = 0; j < n; j++) l1 += fabs(p->re[j]) + fabs(p->im[j]);
    *bound = p->tolerance * (double)(n + BOUND_EXTRA_TERMS) * DBL_EPSILON * (double)l1;
    double err = 0.0;
    reference_fft(p);
    for (long k = 0; k < n; k++) err = worse_error(bin_error(p, k, p->work[k]), err);
    if (n <= p->full_check_max_n)
        for (long k = 0; k < n; k++) err = worse_error(bin_error(p, k, reference_bin(p, k)), err);
    *max_error = err;
    return err <= *bound; /* false for NaN */
}
