/* techniques: packing, tiling, loop_order
 * near miss for: transpose
 * why: for each KB x NB block of B, the block is gathered (rows of stride n) into a local
 *      contiguous buffer, then every row of A multiplies it in i-k-j order. The block keeps
 *      its row-major layout: not a transpose.
 */
enum { KB = 128, NB = 64 };

void dgemm(int n, const double *A, const double *B, double *C)
{
    double packed[KB * NB];
    for (int i = 0; i < n * n; i++)
        C[i] = 0.0;
    for (int j0 = 0; j0 < n; j0 += NB) {
        const int nb = n - j0 < NB ? n - j0 : NB;
        for (int k0 = 0; k0 < n; k0 += KB) {
            const int kb = n - k0 < KB ? n - k0 : KB;
            for (int k = 0; k < kb; k++)
                for (int j = 0; j < nb; j++)
                    packed[k * NB + j] = B[(k0 + k) * n + j0 + j];
            for (int i = 0; i < n; i++)
                for (int k = 0; k < kb; k++) {
                    const double a = A[i * n + k0 + k];
                    for (int j = 0; j < nb; j++)
                        C[i * n + j0 + j] += a * packed[k * NB + j];
                }
        }
    }
}
