/* expect: crash
 * why: calls through a null function pointer the compiler cannot prove null: SIGSEGV.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    void (*volatile hook)(void) = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    hook();
}
