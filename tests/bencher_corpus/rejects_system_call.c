/* expect: rejected
 * why: runs a shell command with system(); not an allowed symbol.
 * detail: system
 */
#include <stdlib.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    system("echo pwned > /tmp/hpcrl_pwned");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
