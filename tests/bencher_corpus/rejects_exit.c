/* expect: rejected
 * why: calls exit(0) after computing, ending the child before the harness can time or
 *      check anything; exit is not an allowed symbol.
 * detail: exit
 */
#include <stdlib.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    exit(0);
}
