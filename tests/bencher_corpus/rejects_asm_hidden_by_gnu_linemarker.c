/* expect: rejected
 * why: the GNU linemarker form "# 1 <file> 3" (3 = system header) is accepted in source
 *      too; it marks the asm line as system-header code in the -E output.
 *      (Rejecting the linemarker itself is an equally good answer, so no detail line.)
 */
# 1 "/usr/lib/gcc/x86_64-linux-gnu/12/include/immintrin.h" 3
static void stall(void) { __asm__ volatile("pause"); }
# 9 "rejects_asm_hidden_by_gnu_linemarker.c"

void dgemm(int n, const double *A, const double *B, double *C)
{
    stall();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
