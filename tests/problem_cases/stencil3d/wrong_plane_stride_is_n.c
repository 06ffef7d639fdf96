/* expect: wrong_answer
 * why: an indexing slip: the i-1 and i+1 neighbours are taken n points away instead of n*n (the 2D stride),
 * so those two terms are the j neighbours counted twice. */
void stencil3d(int n, const double *in, double *out) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            for (int k = 0; k < n; k++) {
                long c = ((long)i * n + j) * n + k;
                if (i == 0 || j == 0 || k == 0 || i == n - 1 || j == n - 1 || k == n - 1)
                    out[c] = in[c];
                else
                    out[c] = 0.4 * in[c] +
                             0.1 * (in[c - n] + in[c + n] + in[c - n] + in[c + n] + in[c - 1] + in[c + 1]);
            }
}
