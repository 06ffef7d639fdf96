/* expect: wrong_answer
 * why: computes once per size n and replays that product for every later call of the
 *      same size, betting that inputs never change.
 */
#include <stdlib.h>
#include <string.h>

static double *saved;
static int saved_n;

void dgemm(int n, const double *A, const double *B, double *C)
{
    size_t bytes = (size_t)n * n * sizeof(double);
    if (saved && saved_n == n) {
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
    saved_n = n;
}
