/* expect: wrong_answer
 * detail: modified its input A
 * why: casts away const and overwrites A and B with zeros after writing the right C. The inputs are
 *      const: a kernel that writes them breaks its caller (whose matrices they are), however right C
 *      is. The monitor compares every input with its private copy after each call.
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
