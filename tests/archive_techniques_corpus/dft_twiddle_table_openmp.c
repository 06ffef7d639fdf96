/* techniques: openmp, simd_pragma
 * why: the n twiddle factors computed once into a table (index k*j mod n), the outputs
 *      shared over threads, each sum vectorised by `omp simd` with a reduction.
 */
#include <math.h>
#include <stdlib.h>

void dft(int n, const double *re, const double *im, double *re_out, double *im_out)
{
    double *tc = malloc(2 * sizeof(double) * (size_t)n), *ts = tc + n;
    if (tc == NULL)
        return;
    for (int t = 0; t < n; t++) {
        tc[t] = cos(-2.0 * M_PI * t / n);
        ts[t] = sin(-2.0 * M_PI * t / n);
    }
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < n; k++) {
        double sr = 0.0, si = 0.0;
        #pragma omp simd reduction(+:sr, si)
        for (int j = 0; j < n; j++) {
            long t = (long)k * j % n;
            sr += re[j] * tc[t] - im[j] * ts[t];
            si += re[j] * ts[t] + im[j] * tc[t];
        }
        re_out[k] = sr;
        im_out[k] = si;
    }
    free(tc);
}
