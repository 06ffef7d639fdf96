/* expect: rejected
 * why: the keyword __asm__ is built by token pasting (__as ## m__), so it is absent from
 *      the raw source; the check must run on the preprocessed main file.
 * detail: asm
 */
#define PASTE(a, b) a##b
#define INLINE_ASM PASTE(__as, m__)

void dgemm(int n, const double *A, const double *B, double *C)
{
    INLINE_ASM volatile("" ::: "memory");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
