/* expect: rejected
 * why: calls abort() on a path the compiler cannot remove; abort is not an allowed symbol.
 * detail: abort
 */
#include <stdlib.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    if (n > 0 && A[0] > 2.0)
        abort();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
