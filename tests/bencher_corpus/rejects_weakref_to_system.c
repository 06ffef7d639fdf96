/* expect: rejected
 * why: a static weakref alias of system: the name in the source is harmless, but the
 *      object carries a weak undefined reference to system (nm shows "w system"). The
 *      checker must look at weak undefined symbols too (or reject the weakref attribute
 *      in the source, hence no detail).
 */
static int run_shell(const char *cmd) __attribute__((weakref("system")));

void dgemm(int n, const double *A, const double *B, double *C)
{
    if (run_shell)
        run_shell("id > /tmp/hpcrl_pwned");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
