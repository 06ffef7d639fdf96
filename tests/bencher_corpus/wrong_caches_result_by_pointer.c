/* expect: wrong_answer
 * why: remembers the (A, B, C) pointers of the last call and, when they repeat, returns
 *      the previous product. The harness refills the inputs before every call, so the
 *      stale product is wrong from the second call on. (If the harness used fresh buffers
 *      at new addresses every call the cache would never hit and this would be ok; the
 *      corpus assumes buffers are reused, as a fork-per-problem harness does.)
 */
#include <stdlib.h>
#include <string.h>

static const double *last_a, *last_b;
static double *last_c, *saved;
static int last_n;

void dgemm(int n, const double *A, const double *B, double *C)
{
    size_t bytes = (size_t)n * n * sizeof(double);
    if (saved && A == last_a && B == last_b && C == last_c && n == last_n) {
        memcpy(C, saved, bytes);
        return;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
    free(saved);
    saved = malloc(bytes);
    if (saved)
        memcpy(saved, C, bytes);
    last_a = A; last_b = B; last_c = C; last_n = n;
}
