/* techniques: loop_order
 * near miss for: packing
 * why: near miss for packing: B is copied whole, in its own layout, into a buffer once
 *      before computing: no block is gathered and nothing is repacked per block.
 */
#include <stdlib.h>
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    double *copy = malloc(sizeof(double) * (size_t)n * (size_t)n);
    if (!copy)
        return;
    memcpy(copy, B, sizeof(double) * (size_t)n * (size_t)n);
    memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            const double a = A[i * n + k];
            for (int j = 0; j < n; j++)
                C[i * n + j] += a * copy[k * n + j];
        }
    free(copy);
}
