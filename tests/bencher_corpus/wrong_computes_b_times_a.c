/* expect: wrong_answer
 * why: computes B*A instead of A*B (a plausible index mix-up; right shape, right scale).
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += B[i * n + k] * A[k * n + j];
            C[i * n + j] = s;
        }
}
