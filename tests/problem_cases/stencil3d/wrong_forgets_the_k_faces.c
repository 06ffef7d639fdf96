/* expect: wrong_answer
 * why: copies the boundary planes i = 0, n-1 and rows j = 0, n-1 but forgets the points k = 0 and k = n-1 of
 * the interior rows: they keep the garbage. */
void stencil3d(int n, const double *in, double *out) {
    long plane = (long)n * n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            long row = i * plane + (long)j * n;
            if (i == 0 || j == 0 || i == n - 1 || j == n - 1) {
                for (int k = 0; k < n; k++) out[row + k] = in[row + k];
                continue;
            }
            for (int k = 1; k < n - 1; k++) {
                long c = row + k;
                out[c] = 0.4 * in[c] +
                         0.1 * (in[c - plane] + in[c + plane] + in[c - n] + in[c + n] + in[c - 1] + in[c + 1]);
            }
        }
}
