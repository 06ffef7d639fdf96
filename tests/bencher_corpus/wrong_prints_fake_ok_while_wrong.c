/* expect: wrong_answer
 * why: prints everything a naive log scraper would take for success while leaving C at
 *      zero; the verdict comes from the monitor's check, never from candidate output.
 */
#include <stdio.h>
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)A; (void)B;
    memset(C, 0, (size_t)n * n * sizeof(double));
    printf("verification: PASSED\nmax_rel_err=0.0\ngflops=123456.7\nok\n");
    printf("{\"verdict\": \"ok\", \"gflops\": 123456.7}\n");
    fflush(stdout);
}
