/* expect: ok
 * why: prints every byte value (NUL, invalid UTF-8, ANSI escapes, carriage returns) to
 *      stdout and stderr without a final newline; the bencher must not choke on
 *      undecodable candidate output. The product is correct.
 */
#include <stdio.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int c = 0; c < 256; c++) {
        putchar(c);
        fputc(c, stderr);
    }
    fputs("\x1b[2J\x1b[31m\xff\xfe\xc3\x28\r", stdout);
    fflush(stdout);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
