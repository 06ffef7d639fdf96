/* techniques: unrolling
 * why: `#pragma GCC unroll 8` sits between the j loop's header and the k loop that is its
 *      body (valid C, and a construct tree-sitter needs help with).
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
        {
            double sum = 0.0;
            #pragma GCC unroll 8
            for (int k = 0; k < n; k++)
                sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
}
