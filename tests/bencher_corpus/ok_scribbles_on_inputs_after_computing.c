/* expect: ok
 * why: casts away const and overwrites A and B with zeros after writing the right C.
 *      The monitor verifies against its own copies of the inputs and refills them before
 *      every call, so the damage is invisible and the answer is right.
 */
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    memset((double *)A, 0, (size_t)n * n * sizeof(double));
    memset((double *)B, 0, (size_t)n * n * sizeof(double));
}
