/* The naive reference of `dft`: the O(n^2) definition, bin by bin, with a table of the n twiddle factors
 * e^(-2 pi i m / n) (cos and sin in loops of their own) indexed by j * k mod n, kept as a running index;
 * no threads, no vectorisation hints, no FFT. */
#include <math.h>
#include <stdlib.h>

void dft(int n, const double *re, const double *im, double *re_out, double *im_out) {
    double *c = malloc(2 * (size_t)n * sizeof(double)), *s = c + n;
    if (!c) return;
    for (int m = 0; m < n; m++) c[m] = cos(2.0 * M_PI * m / n);
    for (int m = 0; m < n; m++) s[m] = -sin(2.0 * M_PI * m / n);
    for (int k = 0; k < n; k++) {
        double sr = 0.0, si = 0.0;
        int m = 0; /* j * k mod n */
        for (int j = 0; j < n; j++) {
            sr += re[j] * c[m] - im[j] * s[m];
            si += re[j] * s[m] + im[j] * c[m];
            m += k;
            if (m >= n) m -= n;
        }
        re_out[k] = sr;
        im_out[k] = si;
    }
    free(c);
}
