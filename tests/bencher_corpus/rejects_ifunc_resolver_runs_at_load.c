/* expect: rejected
 * why: __attribute__((ifunc)) makes the dynamic loader (or static startup) call a resolver
 *      before main, like a constructor, without any .init_array section; the resolver here
 *      only counts, but it is code run outside every timed call. Reject the attribute.
 * detail: ifunc
 */
typedef void kernel_fn(int, const double *, const double *, double *);

static int resolved;

static void naive(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}

static kernel_fn *pick_kernel(void)
{
    resolved++;
    return naive;
}

static void kernel(int n, const double *A, const double *B, double *C)
    __attribute__((ifunc("pick_kernel")));

void dgemm(int n, const double *A, const double *B, double *C)
{
    kernel(n, A, B, C);
}
