/* expect: crash
 * why: a variable-length array of 1000 * n * n doubles on the stack (128 MiB at n = 128,
 *      far past the 8 MiB stack), touched from the far end: SIGSEGV.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    double big[(long)n * n * 1000];
    volatile double *touch = big;
    for (long t = 0; t < (long)n * n * 1000; t += 512)
        touch[t] = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    C[0] += touch[0];
}
