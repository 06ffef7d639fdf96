/* expect: crash
 * why: recursion with no base case that can be reached for n > 0, keeping a volatile
 *      frame-local array alive across each call so gcc can turn it into neither a loop
 *      nor nothing: the stack runs out, SIGSEGV.
 */
static double descend(int depth, const double *A)
{
    volatile double frame[64];
    frame[depth & 63] = A[depth & 1];
    if (depth >= 0)
        return descend(depth + 1, A) + frame[depth & 63];
    return frame[0];
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
    if (n > 0)
        C[0] += 0.0 * descend(0, A);
}
