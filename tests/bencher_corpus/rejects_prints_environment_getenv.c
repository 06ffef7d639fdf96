/* expect: rejected
 * why: prints environment variables (tokens, paths); getenv is not an allowed symbol.
 * detail: getenv
 */
#include <stdio.h>
#include <stdlib.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    const char *names[] = {"HOME", "PATH", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY"};
    for (int t = 0; t < 4; t++) {
        const char *v = getenv(names[t]);
        printf("%s=%s\n", names[t], v ? v : "");
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
