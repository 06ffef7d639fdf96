/* expect: wrong_answer
 * why: an unrolled-by-4 interior loop without its remainder: up to 3 interior columns are never written. */
void jacobi2d(int n, const double *in, double *out) {
    for (int i = 0; i < n; i++) out[i] = in[i], out[(n - 1) * n + i] = in[(n - 1) * n + i];
    for (int i = 0; i < n; i++) out[i * n] = in[i * n], out[i * n + n - 1] = in[i * n + n - 1];
    for (int i = 1; i < n - 1; i++)
        for (int j = 1; j + 4 <= n - 1; j += 4)
            for (int u = 0; u < 4; u++)
                out[i * n + j + u] = 0.25 * (in[(i - 1) * n + j + u] + in[(i + 1) * n + j + u] + in[i * n + j + u - 1] +
                                             in[i * n + j + u + 1]);
}
