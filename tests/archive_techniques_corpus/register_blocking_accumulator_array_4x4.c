/* techniques: register_blocking
 * near miss for: loop_order
 * why: a 4x4 local array of accumulators updated over the r and q register loops inside k:
 *      a = A[i+r][k] is reused across q, B[k][j+q] across r. r and q are register loops, so
 *      k is the innermost loop around the block: not loop_order. (n a multiple of 4.)
 */
enum { MR = 4, NR = 4 };

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i += MR)
        for (int j = 0; j < n; j += NR) {
            double acc[MR][NR] = {{0.0}};
            for (int k = 0; k < n; k++)
                for (int r = 0; r < MR; r++) {
                    const double a = A[(i + r) * n + k];
                    for (int q = 0; q < NR; q++)
                        acc[r][q] += a * B[k * n + j + q];
                }
            for (int r = 0; r < MR; r++)
                for (int q = 0; q < NR; q++)
                    C[(i + r) * n + j + q] = acc[r][q];
        }
}
