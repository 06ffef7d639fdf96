/* expect: wrong_answer
 * why: correct except one element set to +Inf (Inf - Inf = NaN inside a Freivalds
 *      product, so the same NaN-safe comparison is needed).
 */
#include <math.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    C[n * n - 1] = INFINITY;
}
