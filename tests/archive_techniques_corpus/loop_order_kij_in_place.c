/* techniques: loop_order
 * why: k-i-j order: the reduction loop k is outermost and the innermost loop j runs along
 *      a row of C and of B.
 */
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int k = 0; k < n; k++)
        for (int i = 0; i < n; i++) {
            const double a = A[i * n + k];
            for (int j = 0; j < n; j++)
                C[i * n + j] += a * B[k * n + j];
        }
}
