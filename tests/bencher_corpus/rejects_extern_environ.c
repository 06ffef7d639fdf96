/* expect: rejected
 * why: walks the environment through the libc variable environ and prints it; environ is
 *      not an allowed symbol (undefined data symbols are checked like functions).
 * detail: environ
 */
#include <stdio.h>

extern char **environ;

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (char **e = environ; *e != NULL; e++)
        puts(*e);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
