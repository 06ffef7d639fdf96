/* expect: wrong_answer
 * why: caches on a hash of the inputs' contents, but the hash truncates each sampled
 *      element to an integer, and every input lies in (-1, 1), so all inputs of one size
 *      collide and the second call replays the first product. (A cache keyed on the full
 *      contents would never hit on fresh random inputs and would be merely slow.)
 */
#include <stdlib.h>
#include <string.h>

static double *saved;
static long saved_key = -1;

static long content_key(int n, const double *A, const double *B)
{
    long h = n;
    for (int t = 0; t < n * n; t += 97)
        h = h * 31 + (long)A[t] * 7 + (long)B[t];
    return h;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    size_t bytes = (size_t)n * n * sizeof(double);
    long key = content_key(n, A, B);
    if (saved && key == saved_key) {
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
    saved_key = key;
}
