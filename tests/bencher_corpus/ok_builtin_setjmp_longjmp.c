/* expect: ok
 * why: __builtin_setjmp/__builtin_longjmp compile to inline code with no library symbol
 *      (unlike setjmp/longjmp); a non-local jump inside the candidate is harmless. The
 *      product is correct.
 */
static void *jb[5];

static void __attribute__((noinline)) leave(void)
{
    __builtin_longjmp(jb, 1);
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    if (__builtin_setjmp(jb) == 0)
        leave();
}
