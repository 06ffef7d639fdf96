/* expect: wrong_answer
 * why: the twiddle table in single precision (half the memory traffic), the sums in double: each term errs by
 *      about 1e-7 of itself, thousands of times the bound. */
#include <math.h>
#include <stdlib.h>

void dft(int n, const double *re, const double *im, double *re_out, double *im_out) {
    float *c = malloc(2 * (size_t)n * sizeof(float)), *s = c + n;
    if (!c) return;
    for (int m = 0; m < n; m++) c[m] = (float)cos(2.0 * M_PI * m / n);
    for (int m = 0; m < n; m++) s[m] = (float)-sin(2.0 * M_PI * m / n);
    for (int k = 0; k < n; k++) {
        double sr = 0.0, si = 0.0;
        for (int j = 0, m = 0; j < n; j++, m = (m + k) % n) {
            sr += re[j] * c[m] - im[j] * s[m];
            si += re[j] * s[m] + im[j] * c[m];
        }
        re_out[k] = sr;
        im_out[k] = si;
    }
    free(c);
}
