/* expect: wrong_answer
 * why: writes a cheap garbage C (a copy of A), then makes the inputs agree with it by
 *      turning B into the identity, so a checker that reads A and B back from the
 *      candidate's buffers would pass it. Private copies defeat it.
 */
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    double *b = (double *)B;
    memcpy(C, A, (size_t)n * n * sizeof(double));
    memset(b, 0, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++)
        b[i * n + i] = 1.0;
}
