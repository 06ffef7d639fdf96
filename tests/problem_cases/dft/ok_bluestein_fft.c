/* expect: ok
 * why: an honest fast algorithm: a radix-2 FFT for powers of two, and Bluestein's algorithm (a chirp and a
 *      power-of-two cyclic convolution of length M >= 2n - 1) for every other n, all in double, twiddles and
 *      chirp from exact indices (cos and sin in loops of their own); the pointwise steps in parallel (OpenMP). */
#include <math.h>
#include <stdlib.h>

/* In-place FFT of length m (a power of two) on split arrays; wr, wi: e^(-2 pi i k / m), k < m / 2; sign -1
 * for the inverse (without 1/m). */
static void fft(int m, double *xr, double *xi, const double *wr, const double *wi, double sign) {
    for (int i = 1, j = 0; i < m; i++) {
        int bit = m >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            double t = xr[i];
            xr[i] = xr[j], xr[j] = t;
            t = xi[i];
            xi[i] = xi[j], xi[j] = t;
        }
    }
    for (int len = 2; len <= m; len <<= 1)
        for (int start = 0; start < m; start += len)
            for (int k = 0; k < len / 2; k++) {
                int a = start + k, b = a + len / 2, t = k * (m / len);
                double vr = xr[b] * wr[t] - xi[b] * sign * wi[t], vi = xr[b] * sign * wi[t] + xi[b] * wr[t];
                xr[b] = xr[a] - vr, xi[b] = xi[a] - vi;
                xr[a] += vr, xi[a] += vi;
            }
}

static void roots(int m, double *wr, double *wi) {
    for (int k = 0; k < m / 2; k++) wr[k] = cos(2.0 * M_PI * k / m);
    for (int k = 0; k < m / 2; k++) wi[k] = -sin(2.0 * M_PI * k / m);
}

void dft(int n, const double *re, const double *im, double *re_out, double *im_out) {
    if ((n & (n - 1)) == 0) {
        double *w = malloc((size_t)n * sizeof(double));
        if (!w) return;
        roots(n, w, w + n / 2);
        for (int j = 0; j < n; j++) re_out[j] = re[j], im_out[j] = im[j];
        fft(n, re_out, im_out, w, w + n / 2, 1.0);
        free(w);
        return;
    }
    int m = 1;
    while (m < 2 * n - 1) m <<= 1;
    double *buf = calloc(5 * (size_t)m + 2 * (size_t)n, sizeof(double));
    if (!buf) return;
    double *ar = buf, *ai = ar + m, *hr = ai + m, *hi = hr + m, *wr = hi + m, *wi = wr + m / 2, *cr = wi + m / 2,
           *ci = cr + n;
    roots(m, wr, wi);
    for (int j = 0; j < n; j++) cr[j] = cos(M_PI * (double)((long)j * j % (2L * n)) / n); /* e^(i pi j^2 / n) */
    for (int j = 0; j < n; j++) ci[j] = sin(M_PI * (double)((long)j * j % (2L * n)) / n);
    for (int j = 0; j < n; j++) {
        hr[j] = hr[(m - j) % m] = cr[j];
        hi[j] = hi[(m - j) % m] = ci[j];
    }
#pragma omp parallel for schedule(static)
    for (int j = 0; j < n; j++) {
        ar[j] = re[j] * cr[j] + im[j] * ci[j];
        ai[j] = im[j] * cr[j] - re[j] * ci[j];
    }
    fft(m, ar, ai, wr, wi, 1.0);
    fft(m, hr, hi, wr, wi, 1.0);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < m; k++) {
        double r = ar[k] * hr[k] - ai[k] * hi[k];
        ai[k] = ar[k] * hi[k] + ai[k] * hr[k];
        ar[k] = r;
    }
    fft(m, ar, ai, wr, wi, -1.0);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < n; k++) {
        re_out[k] = (ar[k] * cr[k] + ai[k] * ci[k]) / m;
        im_out[k] = (ai[k] * cr[k] - ar[k] * ci[k]) / m;
    }
    free(buf);
}
