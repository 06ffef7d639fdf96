/* expect: rejected
 * why: __builtin_fork() needs no header and no declaration, but it still compiles to a
 *      call to the libc symbol fork.
 * detail: fork
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    if (n < 0)
        __builtin_fork();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
