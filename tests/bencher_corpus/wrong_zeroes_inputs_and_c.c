/* expect: wrong_answer
 * why: casts away const, zeros A and B, and writes C = 0, which is "A*B" for the inputs as
 *      they are now. The monitor checks against its private copies of the inputs, so
 *      C = 0 is wrong.
 */
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    size_t bytes = (size_t)n * n * sizeof(double);
    memset((double *)A, 0, bytes);
    memset((double *)B, 0, bytes);
    memset(C, 0, bytes);
}
