/* techniques: none
 * near miss for: transpose
 * why: near miss for transpose: the inner loop reads B down a column (B[k][j] with k
 *      innermost) and a same-layout copy of A is made, but no element is ever written to
 *      a swapped position.
 */
#include <stdlib.h>
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    double *a = malloc(sizeof(double) * (size_t)n * (size_t)n);
    if (!a)
        return;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++)
            a[i * n + k] = A[i * n + k];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++)
                sum += a[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
    free(a);
}
