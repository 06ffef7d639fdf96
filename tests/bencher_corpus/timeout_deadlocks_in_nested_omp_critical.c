/* expect: timeout
 * why: enters the (unnamed) OpenMP critical section from inside itself; libgomp's lock
 *      is not recursive, so the thread blocks on a futex forever using no CPU. A limit on
 *      CPU time alone would never fire; the limit must be wall-clock. (Unnamed on purpose:
 *      a named critical adds a common symbol, see ok_named_omp_critical.c.)
 */
static void add_row(int n, int i, const double *A, const double *B, double *C)
{
    #pragma omp critical
    for (int j = 0; j < n; j++) {
        double s = 0.0;
        for (int k = 0; k < n; k++)
            s += A[i * n + k] * B[k * n + j];
        C[i * n + j] = s;
    }
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    #pragma omp critical
    for (int i = 0; i < n; i++)
        add_row(n, i, A, B, C);
}
