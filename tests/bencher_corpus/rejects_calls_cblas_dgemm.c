/* expect: rejected
 * why: calls a vendor BLAS directly (the harness is not linked against one, but the
 *      symbol check must reject it before any link attempt).
 * detail: cblas_dgemm
 */
extern void cblas_dgemm(int, int, int, int, int, int, double, const double *, int,
                        const double *, int, double, double *, int);

void dgemm(int n, const double *A, const double *B, double *C)
{
    cblas_dgemm(101, 111, 111, n, n, n, 1.0, A, n, B, n, 0.0, C, n);
}
