/* rank: 2
 * why: transposes B into a static malloc'd buffer on every call, so each C element is a
 *      unit-stride dot product of two rows; better locality than ijk, but each dot product
 *      is a serial reduction and nothing is blocked.
 */
#include <stdlib.h>

static double *bt;
static size_t bt_count;

void dgemm(int n, const double *A, const double *B, double *C)
{
    size_t count = (size_t)n * n;
    if (count > bt_count) {
        free(bt);
        bt = malloc(count * sizeof(double));
        bt_count = bt ? count : 0;
        if (!bt)
            __builtin_trap();
    }
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            bt[(size_t)j * n + k] = B[(size_t)k * n + j];
    for (int i = 0; i < n; i++) {
        const double *a = A + (size_t)i * n;
        for (int j = 0; j < n; j++) {
            const double *b = bt + (size_t)j * n;
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += a[k] * b[k];
            C[(size_t)i * n + j] = s;
        }
    }
}
