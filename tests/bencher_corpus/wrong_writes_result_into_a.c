/* expect: wrong_answer
 * why: computes the product in place in A's buffer (row by row with a row buffer) and
 *      never touches C, betting that the harness reads the result from the wrong buffer
 *      or that A and C alias. C stays NaN.
 */
#include <stdlib.h>
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)C;
    double *a = (double *)A;
    double *row = malloc((size_t)n * sizeof(double));
    if (!row)
        return;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += a[i * n + k] * B[k * n + j];
            row[j] = s;
        }
        memcpy(a + (size_t)i * n, row, (size_t)n * sizeof(double));
    }
    free(row);
}
