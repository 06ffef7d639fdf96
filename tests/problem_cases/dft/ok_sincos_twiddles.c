/* expect: ok
 * why: the O(n^2) definition with each twiddle from sin and cos of one angle, which gcc merges into one call to
 *      sincos: the policy allows libm in double and float, sincos included (it once refused this honest code). */
#include <math.h>
void dft(int n, const double *re, const double *im, double *re_out, double *im_out) {
    for (int k = 0; k < n; k++) {
        double sr = 0.0, si = 0.0;
        for (int j = 0; j < n; j++) {
            double angle = -2.0 * M_PI * (double)((long)j * k % n) / n;
            double c = cos(angle), s = sin(angle);
            sr += re[j] * c - im[j] * s;
            si += re[j] * s + im[j] * c;
        }
        re_out[k] = sr;
        im_out[k] = si;
    }
}
