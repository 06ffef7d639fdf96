/* techniques: none
 * why: the 7-point stencil over the n^3 grid, plane by plane, row by row; boundary points
 *      copied. No reduction, no blocking.
 */
void stencil3d(int n, const double *in, double *out)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            for (int k = 0; k < n; k++) {
                long p = ((long)i * n + j) * n + k;
                if (i == 0 || j == 0 || k == 0 || i == n - 1 || j == n - 1 || k == n - 1)
                    out[p] = in[p];
                else
                    out[p] = (in[p] + in[p - 1] + in[p + 1] + in[p - n] + in[p + n]
                              + in[p - (long)n * n] + in[p + (long)n * n]) / 7.0;
            }
}
