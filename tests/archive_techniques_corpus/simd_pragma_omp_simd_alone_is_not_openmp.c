/* techniques: simd_pragma, loop_order
 * near miss for: openmp
 * why: near miss for openmp: `#pragma omp simd` asks for vectorisation of the j loop only;
 *      it creates no threads.
 */
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            const double a = A[i * n + k];
            #pragma omp simd
            for (int j = 0; j < n; j++)
                C[i * n + j] += a * B[k * n + j];
        }
}
