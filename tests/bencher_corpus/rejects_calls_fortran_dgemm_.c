/* expect: rejected
 * why: calls the Fortran BLAS entry point dgemm_ (a different symbol from dgemm).
 *      Row-major C = A*B is column-major C^T = B^T*A^T, hence B before A.
 * detail: dgemm_
 */
extern void dgemm_(const char *, const char *, const int *, const int *, const int *,
                   const double *, const double *, const int *, const double *, const int *,
                   const double *, double *, const int *);

void dgemm(int n, const double *A, const double *B, double *C)
{
    const double one = 1.0, zero = 0.0;
    dgemm_("N", "N", &n, &n, &n, &one, B, &n, A, &n, &zero, C, &n);
}
