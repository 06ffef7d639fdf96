/* expect: rejected
 * why: __attribute__((constructor)) runs code before the harness starts (.init_array in
 *      the object), outside any timed call.
 */
#include <stdio.h>

static int ready;

__attribute__((constructor)) static void warm_up(void)
{
    ready = 1;
    puts("ran before main");
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)ready;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
