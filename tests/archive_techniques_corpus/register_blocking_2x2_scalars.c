/* techniques: register_blocking, unrolling
 * near miss for: tiling
 * why: a 2x2 block of C in four scalar accumulators: each A element feeds two of them and
 *      each B element two. The i and j loops step by 2 and use i, i+1 and j, j+1
 *      (unroll-and-jam), so unrolling too. The odd-column edge runs r from i to i + 2
 *      inside the i loop: a register tile of two rows, not cache tiling.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    int i = 0;
    for (; i + 1 < n; i += 2) {
        int j = 0;
        for (; j + 1 < n; j += 2) {
            double c00 = 0.0, c01 = 0.0, c10 = 0.0, c11 = 0.0;
            for (int k = 0; k < n; k++) {
                const double a0 = A[i * n + k], a1 = A[(i + 1) * n + k];
                const double b0 = B[k * n + j], b1 = B[k * n + j + 1];
                c00 += a0 * b0;
                c01 += a0 * b1;
                c10 += a1 * b0;
                c11 += a1 * b1;
            }
            C[i * n + j] = c00;
            C[i * n + j + 1] = c01;
            C[(i + 1) * n + j] = c10;
            C[(i + 1) * n + j + 1] = c11;
        }
        for (; j < n; j++)
            for (int r = i; r < i + 2; r++) {
                double sum = 0.0;
                for (int k = 0; k < n; k++)
                    sum += A[r * n + k] * B[k * n + j];
                C[r * n + j] = sum;
            }
    }
    for (; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++)
                sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
}
