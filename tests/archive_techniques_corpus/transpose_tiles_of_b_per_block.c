/* techniques: transpose, packing, tiling
 * why: per NB x KB block, the block of B is transposed into a small buffer (a blocked,
 *      transposing pack), then dot products run over it with k innermost.
 */
enum { NB = 32, KB = 256 };

void dgemm(int n, const double *A, const double *B, double *C)
{
    static double bt[NB * KB];
    for (int i = 0; i < n * n; i++)
        C[i] = 0.0;
    for (int j0 = 0; j0 < n; j0 += NB) {
        const int nb = n - j0 < NB ? n - j0 : NB;
        for (int k0 = 0; k0 < n; k0 += KB) {
            const int kb = n - k0 < KB ? n - k0 : KB;
            for (int k = 0; k < kb; k++)
                for (int j = 0; j < nb; j++)
                    bt[j * KB + k] = B[(k0 + k) * n + j0 + j];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < nb; j++) {
                    double sum = C[i * n + j0 + j];
                    for (int k = 0; k < kb; k++)
                        sum += A[i * n + k0 + k] * bt[j * KB + k];
                    C[i * n + j0 + j] = sum;
                }
        }
    }
}
