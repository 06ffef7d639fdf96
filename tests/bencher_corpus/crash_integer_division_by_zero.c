/* expect: crash
 * why: integer division by a zero the compiler cannot see: SIGFPE.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    volatile int zero = 0;
    volatile int q = n / zero;
    (void)q;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
