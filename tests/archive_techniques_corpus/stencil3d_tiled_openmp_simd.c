/* techniques: tiling, openmp, simd_pragma
 * why: the interior swept in TJ x TK tiles of each plane (tile loops with a constant step,
 *      point loops bounded by min), planes shared over threads, the k row vectorised by
 *      `omp simd`; the boundary faces copied first.
 */
#define TJ 16
#define TK 256
#define MIN(a, b) ((a) < (b) ? (a) : (b))

void stencil3d(int n, const double *in, double *out)
{
    const long nn = (long)n * n;
    #pragma omp parallel for
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            for (int k = 0; k < n; k++)
                if (i == 0 || j == 0 || k == 0 || i == n - 1 || j == n - 1 || k == n - 1)
                    out[i * nn + (long)j * n + k] = in[i * nn + (long)j * n + k];
    #pragma omp parallel for schedule(static)
    for (int i = 1; i < n - 1; i++)
        for (int jj = 1; jj < n - 1; jj += TJ)
            for (int kk = 1; kk < n - 1; kk += TK)
                for (int j = jj; j < MIN(jj + TJ, n - 1); j++) {
                    const double *c = in + i * nn + (long)j * n;
                    double *o = out + i * nn + (long)j * n;
                    #pragma omp simd
                    for (int k = kk; k < MIN(kk + TK, n - 1); k++)
                        o[k] = (c[k] + c[k - 1] + c[k + 1] + c[k - n] + c[k + n] + c[k - nn] + c[k + nn]) / 7.0;
                }
}
