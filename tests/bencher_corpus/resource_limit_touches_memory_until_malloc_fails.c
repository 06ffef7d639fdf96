/* expect: resource_limit
 * why: checks malloc's result, but allocates and touches 256 MiB blocks until malloc
 *      fails or 16 GiB are held (well above any sane per-candidate limit), then computes
 *      the right product and keeps the memory. Under an address-space limit malloc fails
 *      quietly, so the harness must itself notice that the limit was reached (peak RSS,
 *      cgroup OOM event) and say resource_limit; under a cgroup limit the child is
 *      OOM-killed, which must also read as resource_limit rather than crash.
 */
#include <stdlib.h>
#include <string.h>

struct block { struct block *next; };
static struct block *held;

void dgemm(int n, const double *A, const double *B, double *C)
{
    const size_t block_bytes = (size_t)256 << 20;
    for (int b = 0; b < 64; b++) {
        struct block *p = malloc(block_bytes);
        if (!p)
            break;
        memset(p, 1, block_bytes);
        p->next = held;
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
