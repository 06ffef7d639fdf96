/* techniques: none
 * near miss for: packing
 * why: near miss for packing: each row of A is copied into a local buffer before its dot
 *      products, but a row is already contiguous; the copy gathers nothing (and the order
 *      stays i-j-k).
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    double row[4096];
    if (n > 4096)
        return;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n; k++)
            row[k] = A[i * n + k];
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++)
                sum += row[k] * B[k * n + j];
            C[i * n + j] = sum;
        }
    }
}
