/* expect: rejected
 * why: glibc's __REDIRECT macro (from <sys/cdefs.h>, pulled in by <stdlib.h>) expands to an
 *      asm label in the main file; here it binds my_puts to puts, so the symbol check
 *      alone would pass, but asm labels rename symbols and must be rejected.
 * detail: asm
 */
#include <stdlib.h>

extern int __REDIRECT(my_puts, (const char *s), puts);

void dgemm(int n, const double *A, const double *B, double *C)
{
    my_puts("renamed");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
