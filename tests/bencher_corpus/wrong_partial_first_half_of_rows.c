/* expect: wrong_answer
 * why: computes only the first n/2 rows and zeros the rest (half the work, finite output).
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            if (i < n / 2)
                for (int k = 0; k < n; k++)
                    s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
