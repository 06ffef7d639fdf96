/* expect: rejected
 * why: <sys/../stdlib.h> ends in an allowed name but is not one; the allowlist must
 *      compare whole header names, not suffixes.
 * detail: include
 */
#include <sys/../stdlib.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
