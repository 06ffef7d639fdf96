/* expect: rejected
 * why: "#line 1 /usr/include/stdlib.h" makes the following lines look, in the
 *      preprocessed output, as if they came from a system header; a checker that trusts
 *      line markers to skip header code would skip this asm. Line markers cannot hide code.
 *      (Rejecting the #line directive itself is an equally good answer, so no detail line.)
 */
#line 1 "/usr/include/stdlib.h"
static void stall(void) { __asm__ volatile("pause"); }
#line 12 "rejects_asm_hidden_by_line_directive.c"

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
