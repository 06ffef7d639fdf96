/* techniques: none
 * near miss for: register_blocking
 * why: near miss for register_blocking: the O(n^2) transform with a cos and a sin per term;
 *      the real and imaginary sums share re[j], im[j], c and s, but they are the two halves
 *      of one output, not a block of outputs.
 */
#include <math.h>

void dft(int n, const double *re, const double *im, double *re_out, double *im_out)
{
    const double w = -2.0 * M_PI / n;
    for (int k = 0; k < n; k++) {
        double sr = 0.0, si = 0.0;
        for (int j = 0; j < n; j++) {
            double a = w * (double)((long)k * j % n);
            double c = cos(a), s = sin(a);
            sr += re[j] * c - im[j] * s;
            si += re[j] * s + im[j] * c;
        }
        re_out[k] = sr;
        im_out[k] = si;
    }
}
