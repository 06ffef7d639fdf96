/* expect: rejected
 * why: times itself with omp_get_wtime; only OpenMP queries (thread counts and ids) are
 *      allowed, not its clock.
 * detail: omp_get_wtime
 */
#include <omp.h>
#include <stdio.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    double t0 = omp_get_wtime();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    printf("seconds=%g\n", omp_get_wtime() - t0);
}
