/* techniques: unrolling, transpose
 * near miss for: register_blocking
 * why: near miss for register_blocking: four partial sums s0..s3 of one dot product (split
 *      to hide FMA latency) share no operand; it is unrolling of k, over a transposed B.
 */
#include <stdlib.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    double *bt = malloc(sizeof(double) * (size_t)n * (size_t)n);
    if (!bt)
        return;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            bt[j * n + k] = B[k * n + j];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            const double *a = A + i * n, *b = bt + j * n;
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
            int k = 0;
            for (; k + 4 <= n; k += 4) {
                s0 += a[k] * b[k];
                s1 += a[k + 1] * b[k + 1];
                s2 += a[k + 2] * b[k + 2];
                s3 += a[k + 3] * b[k + 3];
            }
            for (; k < n; k++)
                s0 += a[k] * b[k];
            C[i * n + j] = (s0 + s1) + (s2 + s3);
        }
    free(bt);
}
