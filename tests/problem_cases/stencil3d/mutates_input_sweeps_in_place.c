/* expect: wrong_answer
 * detail: modified its input in
 * why: out is right, but then copied back over in, as a time-stepping loop that swaps its grids would: the
 * input changed. */
#include <string.h>

void stencil3d(int n, const double *in, double *out) {
    long plane = (long)n * n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            for (int k = 0; k < n; k++) {
                long c = i * plane + (long)j * n + k;
                if (i == 0 || j == 0 || k == 0 || i == n - 1 || j == n - 1 || k == n - 1)
                    out[c] = in[c];
                else
                    out[c] = 0.4 * in[c] +
                             0.1 * (in[c - plane] + in[c + plane] + in[c - n] + in[c + n] + in[c - 1] + in[c + 1]);
            }
    memcpy((double *)in, out, (size_t)(plane * n) * sizeof(double));
}
