/* techniques: openmp, loop_order
 * why: threads from `omp parallel`, one `omp task` per row created by a single thread, in a
 *      static helper that dgemm calls; each task runs i-k-j on its row.
 */
static void row(int n, int i, const double *A, const double *B, double *C)
{
    for (int j = 0; j < n; j++)
        C[i * n + j] = 0.0;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            C[i * n + j] += A[i * n + k] * B[k * n + j];
}

static void all_rows(int n, const double *A, const double *B, double *C)
{
    #pragma omp parallel
    #pragma omp single
    for (int i = 0; i < n; i++) {
        #pragma omp task firstprivate(i)
        row(n, i, A, B, C);
    }
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    all_rows(n, A, B, C);
}
