/* expect: wrong_answer
 * why: every element is scaled by (1 + 1e-6). An honest double result at n <= 512 is
 *      within ~1e-13 relative, so the tolerance must sit far below 1e-6.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s * (1.0 + 1e-6);
        }
}
