/* expect: ok
 * why: tries to return early with `#pragma omp for nowait` and an orphaned task, but the
 *      end of a parallel region is an implicit barrier that also completes all tasks, so
 *      every row is written before dgemm returns.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    #pragma omp parallel
    {
        #pragma omp for nowait schedule(dynamic, 1)
        for (int i = 0; i < n - 1; i++)
            for (int j = 0; j < n; j++) {
                double s = 0.0;
                for (int k = 0; k < n; k++)
                    s += A[i * n + k] * B[k * n + j];
                C[i * n + j] = s;
            }
        #pragma omp single nowait
        {
            #pragma omp task
            for (int j = 0; j < n; j++) {
                double s = 0.0;
                for (int k = 0; k < n; k++)
                    s += A[(n - 1) * n + k] * B[k * n + j];
                C[(n - 1) * n + j] = s;
            }
        }
    }
}
