/* expect: rejected
 * why: #include_next is a GCC extension that is not #include followed by a space; any
 *      directive outside the known set must be rejected.
 * detail: include
 */
#include_next <stdlib.h>

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
