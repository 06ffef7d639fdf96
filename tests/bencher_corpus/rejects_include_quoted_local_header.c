/* expect: rejected
 * why: #include "..." reaches files next to the source (or anywhere via -iquote); only
 *      <...> headers from the allowlist may be included.
 * detail: include
 */
#include "dgemm.h"

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
