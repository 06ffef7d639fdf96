/* techniques: none
 * near miss for: loop_order
 * why: near miss for loop_order: j and i are swapped, but k (the reduction) is still the
 *      innermost loop and accumulates into C[i][j] in place, so the inner loop still walks
 *      B down a column.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++) {
            C[i * n + j] = 0.0;
            for (int k = 0; k < n; k++)
                C[i * n + j] += A[i * n + k] * B[k * n + j];
        }
}
