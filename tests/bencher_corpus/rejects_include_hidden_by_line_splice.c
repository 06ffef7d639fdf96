/* expect: rejected
 * why: the directive is split by a backslash-newline ("#inc\" + "lude"), which the
 *      compiler joins before anything else; a line-by-line regex sees no include.
 * detail: include
 */
#inc\
lude "/etc/hostname"

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
