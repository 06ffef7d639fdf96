/* expect: ok
 * why: a correct ikj loop split over rows with `#pragma omp parallel for`; the compiler's
 *      GOMP_parallel call and the thread pool are allowed.
 */
#include <string.h>

void dgemm(int n, const double *A, const double *B, double *C)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        double *c = C + (size_t)i * n;
        memset(c, 0, (size_t)n * sizeof(double));
        for (int k = 0; k < n; k++) {
            double a = A[(size_t)i * n + k];
            const double *b = B + (size_t)k * n;
            for (int j = 0; j < n; j++)
                c[j] += a * b[j];
        }
    }
}
