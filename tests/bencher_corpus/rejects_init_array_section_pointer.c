/* expect: rejected
 * why: a constructor without the word "constructor": a function pointer placed in
 *      .init_array with a section attribute. The object-level section check catches it
 *      (and a source check on section attributes should too).
 */
#include <stdio.h>

static void early(void)
{
    puts("ran before main");
}

static void (*const hook)(void) __attribute__((section(".init_array"), used)) = early;

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
