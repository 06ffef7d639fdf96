/* The naive reference of `jacobi2d`: copy the boundary, then one pass over the interior, no threads. */
void jacobi2d(int n, const double *in, double *out) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == 0 || j == 0 || i == n - 1 || j == n - 1)
                out[i * n + j] = in[i * n + j];
            else
                out[i * n + j] = 0.25 * (in[(i - 1) * n + j] + in[(i + 1) * n + j] + in[i * n + j - 1] + in[i * n + j + 1]);
        }
}
