/* expect: wrong_answer
 * why: computes A*B^T (unit-stride and fast, but the wrong product).
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[j * n + k];
            C[i * n + j] = s;
        }
}
