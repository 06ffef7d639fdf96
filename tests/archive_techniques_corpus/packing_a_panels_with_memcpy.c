/* techniques: packing, tiling, loop_order
 * why: for each MB x KB block, rows of A (stride n) are copied with memcpy into a
 *      contiguous malloc'd panel that the i-k-j update then reads.
 */
#include <stdlib.h>
#include <string.h>

#define MB 64
#define KB 256

void dgemm(int n, const double *A, const double *B, double *C)
{
    double *panel = malloc(sizeof(double) * MB * KB);
    if (!panel)
        return;
    memset(C, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int i0 = 0; i0 < n; i0 += MB) {
        const int mb = n - i0 < MB ? n - i0 : MB;
        for (int k0 = 0; k0 < n; k0 += KB) {
            const int kb = n - k0 < KB ? n - k0 : KB;
            for (int r = 0; r < mb; r++)
                memcpy(panel + r * KB, A + (size_t)(i0 + r) * n + k0, sizeof(double) * kb);
            for (int r = 0; r < mb; r++)
                for (int k = 0; k < kb; k++) {
                    const double a = panel[r * KB + k];
                    for (int j = 0; j < n; j++)
                        C[(size_t)(i0 + r) * n + j] += a * B[(size_t)(k0 + k) * n + j];
                }
        }
    }
    free(panel);
}
