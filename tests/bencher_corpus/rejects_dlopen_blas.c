/* expect: rejected
 * why: loads OpenBLAS at run time and calls its cblas_dgemm through dlsym, so no BLAS
 *      symbol appears in the object; dlopen and dlsym are not allowed symbols.
 * detail: dlopen
 */
extern void *dlopen(const char *file, int mode);
extern void *dlsym(void *handle, const char *name);

typedef void (*cblas_dgemm_fn)(int, int, int, int, int, int, double, const double *, int,
                               const double *, int, double, double *, int);

void dgemm(int n, const double *A, const double *B, double *C)
{
    void *h = dlopen("libopenblas.so.0", 2);
    if (!h)
        h = dlopen("libblas.so.3", 2);
    cblas_dgemm_fn f = h ? (cblas_dgemm_fn)dlsym(h, "cblas_dgemm") : 0;
    if (f)
        f(101, 111, 111, n, n, n, 1.0, A, n, B, n, 0.0, C, n);
}
