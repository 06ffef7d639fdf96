/* expect: rejected
 * why: __attribute__((destructor)) runs code at exit, after the last timed call
 *      (.fini_array in the object).
 */
#include <stdio.h>

__attribute__((destructor)) static void goodbye(void)
{
    puts("gflops=1e9");
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
