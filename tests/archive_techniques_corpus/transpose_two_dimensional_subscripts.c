/* techniques: transpose
 * near miss for: packing
 * why: B transposed into a malloc'd n x n array addressed with two subscripts
 *      (bt[j][k] = b[k][j]) once, before computing, then unit-stride dot products: the
 *      whole matrix, never repacked per block, so not packing.
 */
#include <stdlib.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    double (*bt)[n] = malloc(sizeof(double) * (size_t)n * (size_t)n);
    const double (*b)[n] = (const double (*)[n])B;
    if (!bt)
        return;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            bt[j][k] = b[k][j];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++)
                sum += A[i * n + k] * bt[j][k];
            C[i * n + j] = sum;
        }
    free(bt);
}
