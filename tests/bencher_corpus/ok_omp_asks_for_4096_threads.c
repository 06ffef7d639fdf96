/* expect: ok
 * why: asks OpenMP for 4096 threads on a 2-core machine. num_threads() is allowed; the
 *      bencher is expected to cap the team (OMP_THREAD_LIMIT, which libgomp applies
 *      silently), so this only runs slower. The product is correct.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    #pragma omp parallel for num_threads(4096) schedule(static, 1)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
