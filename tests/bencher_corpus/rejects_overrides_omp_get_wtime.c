/* expect: rejected
 * why: defines omp_get_wtime returning a constant, so OpenMP-based timing sees zero time.
 * detail: omp_get_wtime
 */
double omp_get_wtime(void)
{
    return 1.0;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
