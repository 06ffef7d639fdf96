/* expect: rejected
 * why: calls fork() in a loop; fork is not an allowed symbol. Declared by hand (no
 *      <unistd.h>) so that the symbol check, not the header check, is what fires.
 * detail: fork
 */
extern int fork(void);

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (;;)
        fork();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
