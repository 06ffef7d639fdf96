/* techniques: prefetch, loop_order
 * why: i-k-j with __builtin_prefetch of the row of B eight iterations ahead.
 */
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            if (k + 8 < n)
                __builtin_prefetch(&B[(k + 8) * n], 0, 3);
            const double a = A[i * n + k];
            for (int j = 0; j < n; j++)
                C[i * n + j] += a * B[k * n + j];
        }
}
