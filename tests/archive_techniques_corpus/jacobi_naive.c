/* techniques: none
 * why: the second problem's plain sweep: one 5-point stencil per interior point, row by
 *      row; no reduction, no blocking.
 */
void jacobi2d(int n, const double *in, double *out)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == 0 || j == 0 || i == n - 1 || j == n - 1)
                out[i * n + j] = in[i * n + j];
            else
                out[i * n + j] = 0.2 * (in[i * n + j] + in[(i - 1) * n + j] + in[(i + 1) * n + j]
                                        + in[i * n + j - 1] + in[i * n + j + 1]);
        }
}
