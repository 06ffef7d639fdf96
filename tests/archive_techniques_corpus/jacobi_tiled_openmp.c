/* techniques: tiling, openmp
 * why: the stencil over TI x TJ tiles (tile loops with a const block size, point loops
 *      bounded by min), the tiles shared over threads.
 */
static const int TI = 64, TJ = 512;

void jacobi2d(int n, const double *in, double *out)
{
    #pragma omp parallel for collapse(2) schedule(static)
    for (int ii = 1; ii < n - 1; ii += TI)
        for (int jj = 1; jj < n - 1; jj += TJ)
            for (int i = ii; i < (ii + TI < n - 1 ? ii + TI : n - 1); i++)
                for (int j = jj; j < (jj + TJ < n - 1 ? jj + TJ : n - 1); j++)
                    out[i * n + j] = 0.2 * (in[i * n + j] + in[(i - 1) * n + j] + in[(i + 1) * n + j]
                                            + in[i * n + j - 1] + in[i * n + j + 1]);
    for (int j = 0; j < n; j++) {
        out[j] = in[j];
        out[(n - 1) * n + j] = in[(n - 1) * n + j];
    }
    for (int i = 0; i < n; i++) {
        out[i * n] = in[i * n];
        out[i * n + n - 1] = in[i * n + n - 1];
    }
}
