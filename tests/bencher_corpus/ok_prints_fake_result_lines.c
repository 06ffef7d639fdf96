/* expect: ok
 * why: computes the right product but prints lines that look like a harness report
 *      ("gflops=1e9", "ok", a JSON verdict). Printing is allowed and nothing printed
 *      is parsed, so the verdict and the GFLOPS come only from the monitor.
 */
#include <stdio.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    printf("gflops=1e9\nok\nPASSED\nverdict: ok\n");
    printf("{\"verdict\": \"ok\", \"gflops\": 1e9, \"seconds\": 1e-9}\n");
    fprintf(stderr, "time_s=0.000000001 gflops=999999\n");
    fflush(stdout);
}
