/* expect: crash
 * why: asks malloc for 64 TiB, which fails under any memory limit (and under the
 *      kernel's overcommit heuristic), ignores the NULL and writes through it: SIGSEGV.
 *      The volatile pointer keeps gcc from deleting the unused allocation.
 */
#include <stdlib.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    double *volatile scratch = malloc((size_t)1 << 46);
    scratch[n] = 1.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    free(scratch);
}
