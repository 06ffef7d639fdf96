/* expect: ok
 * why: writes 1 MiB to stdout on every call. A bencher that pipes stdout without draining
 *      it would deadlock here (the pipe holds 64 KiB); output must be discarded or capped,
 *      never allowed to block the candidate or fill memory. The product is correct.
 */
#include <stdio.h>
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    static char line[1024];
    memset(line, 'x', sizeof line - 1);
    for (int r = 0; r < 1024; r++)
        puts(line);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
