/* expect: rejected
 * why: libc _setjmp/longjmp (what <setjmp.h> maps setjmp to); not allowed symbols.
 * detail: jmp
 */
typedef long jmp_buf[25];
extern int _setjmp(jmp_buf env);
extern void longjmp(jmp_buf env, int val) __attribute__((noreturn));

static jmp_buf env;

void dgemm(int n, const double *A, const double *B, double *C)
{
    if (_setjmp(env) == 0) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0.0;
                for (int k = 0; k < n; k++)
                    s += A[i * n + k] * B[k * n + j];
                C[i * n + j] = s;
            }
        longjmp(env, 1);
    }
}
