/* expect: crash|resource_limit
 * why: unlike crash_huge_malloc_unchecked.c it checks malloc's result: it reserves 256 MiB
 *      blocks (untouched, so this takes microseconds, not a page fault per 4 KiB) until the
 *      address-space limit makes malloc return NULL, then gives up with __builtin_trap()
 *      (SIGILL). A harness that only sees the signal says crash; one that notices the
 *      candidate was at its memory limit (a malloc wrapper, or the peak address space
 *      against RLIMIT_AS) may say resource_limit. Touching the memory instead would make
 *      the verdict depend on how fast pages fault in against the call's time limit.
 */
#include <stdlib.h>

struct block { struct block *next; };
static struct block *held;

void dgemm(int n, const double *A, const double *B, double *C)
{
    const size_t block_bytes = (size_t)256 << 20;
    for (int b = 0; b < 4096; b++) {       /* 1 TiB: past any sane address-space limit */
        struct block *p = malloc(block_bytes);
        if (!p)
            __builtin_trap();
        p->next = held;                     /* one touched page per block keeps it live */
        held = p;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
