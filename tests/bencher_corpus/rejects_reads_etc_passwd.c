/* expect: rejected
 * why: reads /etc/passwd and prints it so it reaches the policy through the logs; fopen
 *      and fgets are not allowed symbols.
 * detail: fopen
 */
#include <stdio.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    char line[256];
    FILE *f = fopen("/etc/passwd", "r");
    while (f && fgets(line, sizeof line, f))
        fputs(line, stdout);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
