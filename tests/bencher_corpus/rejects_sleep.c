/* expect: rejected
 * why: sleeps one second per call; sleep is not an allowed symbol.
 * detail: sleep
 */
extern unsigned int sleep(unsigned int seconds);

void dgemm(int n, const double *A, const double *B, double *C)
{
    sleep(1);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
