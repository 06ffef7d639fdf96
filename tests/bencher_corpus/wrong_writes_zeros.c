/* expect: wrong_answer
 * why: clears C and returns (finite, plausible-looking, wrong).
 */
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)A; (void)B;
    memset(C, 0, (size_t)n * n * sizeof(double));
}
