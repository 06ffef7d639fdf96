/* expect: rejected
 * why: #include "/dev/zero" makes the preprocessor read an endless stream of NUL bytes
 *      (a compile-time bomb). The include check must run on the raw source, before
 *      anything is preprocessed.
 * detail: include
 */
#include "/dev/zero"

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
