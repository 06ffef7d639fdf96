/* expect: wrong_answer
 * why: correct except one element set to NaN. A tolerance test written as
 *      `abs(x - ref) > tol` is false for NaN and would pass it; it must be written as
 *      `not (abs(x - ref) <= tol)` or check isfinite first.
 */
#include <math.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    C[(n / 2) * n + n / 3] = NAN;
}
