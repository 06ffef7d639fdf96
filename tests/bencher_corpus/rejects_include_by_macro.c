/* expect: rejected
 * why: the header name comes from a macro (#include HEADER), so a textual check that
 *      only looks for <...> or "..." after the word include sees neither; a computed
 *      include must be rejected outright.
 * detail: include
 */
#define HEADER "/etc/hostname"
#include HEADER

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
