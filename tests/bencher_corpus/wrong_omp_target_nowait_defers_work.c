/* expect: rejected|wrong_answer
 * why: `#pragma omp target nowait` on the host fallback becomes a deferred task that
 *      nothing waits for, so dgemm returns before the product is computed (checked with
 *      libgomp 12: C is still NaN on return): wrong_answer. It only needs
 *      GOMP_target_ext, which a GOMP_* wildcard allows. With an offload-enabled gcc (as
 *      Debian's) the object also gains .gnu.offload_lto_* sections, and on a machine with a
 *      GPU plugin the region could really run on the GPU; a policy that rejects
 *      `omp target` (or those sections) says rejected, which is the better answer.
 */
void dgemm(int n, const double *A, const double *B, double *C)
{
    #pragma omp target nowait map(to: A[0:n * n], B[0:n * n]) map(from: C[0:n * n])
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
