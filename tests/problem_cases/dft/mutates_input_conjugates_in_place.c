/* expect: wrong_answer
 * detail: modified its input im
 * why: computes the forward transform as conj(inverse(conj(x))), conjugating the input in place and never
 *      undoing it: the output is right, the input im is left negated. */
#include <math.h>
#include <stdlib.h>

void dft(int n, const double *re, const double *im, double *re_out, double *im_out) {
    double *c = malloc(2 * (size_t)n * sizeof(double)), *s = c + n, *conj = (double *)im;
    if (!c) return;
    for (int m = 0; m < n; m++) c[m] = cos(2.0 * M_PI * m / n);
    for (int m = 0; m < n; m++) s[m] = sin(2.0 * M_PI * m / n);
    for (int j = 0; j < n; j++) conj[j] = -conj[j];
    for (int k = 0; k < n; k++) {
        double sr = 0.0, si = 0.0;
        for (int j = 0, m = 0; j < n; j++, m = (m + k) % n) {
            sr += re[j] * c[m] - conj[j] * s[m];
            si += re[j] * s[m] + conj[j] * c[m];
        }
        re_out[k] = sr;
        im_out[k] = -si;
    }
    free(c);
}
