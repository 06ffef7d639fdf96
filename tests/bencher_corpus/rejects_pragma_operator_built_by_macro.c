/* expect: rejected
 * why: the _Pragma operator, with its text built by stringizing in a macro, yields
 *      `#pragma GCC dependency` only after preprocessing; a raw-text check for
 *      "#pragma" sees nothing, and cpp executes GCC dependency/poison/warning itself,
 *      so they never reach the -E output either: the raw text must be checked for the
 *      _Pragma operator.
 * detail: pragma
 */
#define STR(x) #x
#define DO_PRAGMA(x) _Pragma(STR(x))
DO_PRAGMA(GCC dependency "/etc/hostname")

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
