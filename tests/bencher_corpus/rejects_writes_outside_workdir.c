/* expect: rejected
 * why: creates a file in /tmp (outside the work dir) with fopen/fputs; file functions are
 *      not allowed symbols.
 * detail: fopen
 */
#include <stdio.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    FILE *f = fopen("/tmp/hpcrl_corpus_escape", "w");
    if (f) {
        fputs("escaped\n", f);
        fclose(f);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
