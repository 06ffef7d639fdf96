/* techniques: none
 * near miss for: openmp
 * why: near miss for openmp: `#pragma omp parallel for` appears only in this comment, in a
 *      string, inside `#if 0`, and in a helper nothing calls; <omp.h> is included but unused.
 *      #pragma omp parallel for
 */
#include <omp.h>
#include <stdio.h>

static const char *note = "#pragma omp parallel for";

static void unused_parallel_zero(int n, double *C)
{
    #pragma omp parallel for
    for (int i = 0; i < n * n; i++)
        C[i] = 0.0;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    // #pragma omp parallel for
#if 0
    #pragma omp parallel for
#endif
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++)
                sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
    if (n < 0)
        puts(note);
}
