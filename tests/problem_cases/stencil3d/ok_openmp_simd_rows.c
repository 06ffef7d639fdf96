/* expect: ok
 * why: an honest fast version: OpenMP over (i, j) rows, the boundary copied with memcpy, each interior row
 * swept by one vectorised loop (no remainder to forget: the compiler's own). */
#include <string.h>

void stencil3d(int n, const double *in, double *out) {
    long plane = (long)n * n;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            long row = i * plane + (long)j * n;
            if (i == 0 || j == 0 || i == n - 1 || j == n - 1) {
                memcpy(out + row, in + row, (size_t)n * sizeof(double));
                continue;
            }
            const double *c = in + row;
            double *o = out + row;
            o[0] = c[0];
            o[n - 1] = c[n - 1];
#pragma omp simd
            for (int k = 1; k < n - 1; k++)
                o[k] = 0.4 * c[k] + 0.1 * (c[k - plane] + c[k + plane] + c[k - n] + c[k + n] + c[k - 1] + c[k + 1]);
        }
}
