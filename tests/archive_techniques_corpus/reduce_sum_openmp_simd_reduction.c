/* techniques: openmp, simd_pragma
 * why: `omp parallel for simd` with a reduction: threads and vector lanes each keep a
 *      partial sum.
 */
#include <stddef.h>

double reduce_sum(size_t n, const double *x)
{
    double s = 0.0;
    #pragma omp parallel for simd reduction(+:s) schedule(static)
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s;
}
