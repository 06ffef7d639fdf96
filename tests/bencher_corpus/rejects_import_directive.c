/* expect: rejected
 * why: #import is an obsolete GCC directive that still includes a file in C (with a
 *      warning); only #include <allowlisted> may bring in a file.
 * detail: import
 */
#import "/etc/hostname"

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
