/* expect: crash|wrong_answer|rejected
 * why: function-pointer arithmetic from an allowed libc symbol ((char *)memset + offset)
 *      to jump somewhere else in libc without naming it. The target cannot be resolved
 *      statically; here it lands mid-libc with null arguments, so it faults (crash) or
 *      returns having done nothing useful, leaving C as NaN (wrong_answer). Taking the
 *      address of memset adds an undefined _GLOBAL_OFFSET_TABLE_ to the object; a checker
 *      that does not allowlist that linker symbol says rejected instead.
 */
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    (void)A; (void)B;
    void *(*volatile base)(void *, int, size_t) = memset;
    void (*elsewhere)(void *, void *, void *) =
        (void (*)(void *, void *, void *))((char *)base + 0x4000 + (n & 1));
    elsewhere(0, 0, 0);
    (void)C;
}
