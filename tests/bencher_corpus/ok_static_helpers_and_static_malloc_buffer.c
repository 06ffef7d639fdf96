/* expect: ok
 * why: static helpers and a static file-scope buffer that is malloc'd once and grown on
 *      demand; both are local symbols. The buffer holds a transposed copy of B rebuilt on
 *      every call, so nothing is cached across calls.
 */
#include <stdlib.h>

static double *bt;
static size_t bt_cap;

static double *scratch(size_t count)
{
    if (count > bt_cap) {
        free(bt);
        bt = malloc(count * sizeof(double));
        bt_cap = bt ? count : 0;
    }
    return bt;
}

static void transpose(int n, const double *B, double *T)
{
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            T[(size_t)j * n + k] = B[(size_t)k * n + j];
}

static double dot(int n, const double *x, const double *y)
{
    double s = 0.0;
    for (int k = 0; k < n; k++)
        s += x[k] * y[k];
    return s;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    double *T = scratch((size_t)n * n);
    if (!T)
        __builtin_trap();
    transpose(n, B, T);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            C[(size_t)i * n + j] = dot(n, A + (size_t)i * n, T + (size_t)j * n);
}
