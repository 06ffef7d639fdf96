/* expect: rejected
 * why: changes the runtime's thread count; omp_set_num_threads is a setter, and only the
 *      OpenMP queries are allowed.
 * detail: omp_set_num_threads
 */
#include <omp.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    omp_set_num_threads(64);
    #pragma omp parallel for
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
