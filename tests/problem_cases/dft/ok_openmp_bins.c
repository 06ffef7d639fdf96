/* expect: ok
 * why: an honest optimised version of the definition: the twiddle table built once per call, the bins computed
 *      in parallel (OpenMP), each with two independent pairs of accumulators (even and odd j). */
#include <math.h>
#include <stdlib.h>

void dft(int n, const double *re, const double *im, double *re_out, double *im_out) {
    double *c = malloc(2 * (size_t)n * sizeof(double)), *s = c + n;
    if (!c) return;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int m = 0; m < n; m++) c[m] = cos(2.0 * M_PI * m / n);
#pragma omp for schedule(static)
        for (int m = 0; m < n; m++) s[m] = -sin(2.0 * M_PI * m / n);
#pragma omp for schedule(dynamic, 16)
        for (int k = 0; k < n; k++) {
            double sr[2] = {0.0, 0.0}, si[2] = {0.0, 0.0};
            int m = 0; /* j * k mod n */
            for (int j = 0; j < n; j++) {
                sr[j & 1] += re[j] * c[m] - im[j] * s[m];
                si[j & 1] += re[j] * s[m] + im[j] * c[m];
                m += k;
                if (m >= n) m -= n;
            }
            re_out[k] = sr[0] + sr[1];
            im_out[k] = si[0] + si[1];
        }
    }
    free(c);
}
