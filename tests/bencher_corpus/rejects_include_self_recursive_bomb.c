/* expect: rejected
 * why: includes itself twice through __FILE__: 2^200 inclusions before gcc gives up on the
 *      nesting depth (an #include loop bomb). Rejected before preprocessing because the
 *      include is computed and quoted.
 * detail: include
 */
#ifndef DEPTH_GUARD_NEVER_DEFINED
#include __FILE__
#include __FILE__
#endif

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
