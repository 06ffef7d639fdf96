/* expect: ok
 * why: an honest optimised version: bodies in parallel (OpenMP); positions split into x, y, z arrays once per
 *      call, and the loop over all j (the term j = i is zero) four pairs at a time in AVX vectors (exact square
 *      root and division), the last n % 4 pairs in scalar code. */
#include <math.h>
#include <stdlib.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

void nbody_step(int n, double dt, const double *pos, const double *vel, const double *mass, double *new_pos,
                double *new_vel) {
    double *x = malloc(3 * (size_t)n * sizeof(double)), *y = x + n, *z = y + n;
    if (!x) return;
    for (int j = 0; j < n; j++) x[j] = pos[3 * j], y[j] = pos[3 * j + 1], z[j] = pos[3 * j + 2];
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const double xi = x[i], yi = y[i], zi = z[i];
        double a[3] = {0.0, 0.0, 0.0};
        int j = 0;
#ifdef __AVX__
        __m256d ax = _mm256_setzero_pd(), ay = ax, az = ax;
        for (; j + 4 <= n; j += 4) {
            __m256d dx = _mm256_sub_pd(_mm256_loadu_pd(x + j), _mm256_set1_pd(xi));
            __m256d dy = _mm256_sub_pd(_mm256_loadu_pd(y + j), _mm256_set1_pd(yi));
            __m256d dz = _mm256_sub_pd(_mm256_loadu_pd(z + j), _mm256_set1_pd(zi));
            __m256d d2 = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(dx, dx), _mm256_mul_pd(dy, dy)),
                                       _mm256_add_pd(_mm256_mul_pd(dz, dz), _mm256_set1_pd(0.01)));
            __m256d f = _mm256_div_pd(_mm256_loadu_pd(mass + j), _mm256_mul_pd(d2, _mm256_sqrt_pd(d2)));
            ax = _mm256_add_pd(ax, _mm256_mul_pd(f, dx));
            ay = _mm256_add_pd(ay, _mm256_mul_pd(f, dy));
            az = _mm256_add_pd(az, _mm256_mul_pd(f, dz));
        }
        double lanes[3][4];
        _mm256_storeu_pd(lanes[0], ax);
        _mm256_storeu_pd(lanes[1], ay);
        _mm256_storeu_pd(lanes[2], az);
        for (int c = 0; c < 3; c++) a[c] = (lanes[c][0] + lanes[c][1]) + (lanes[c][2] + lanes[c][3]);
#endif
        for (; j < n; j++) {
            const double d[3] = {x[j] - xi, y[j] - yi, z[j] - zi};
            const double d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + 0.01, f = mass[j] / (d2 * sqrt(d2));
            for (int c = 0; c < 3; c++) a[c] += f * d[c];
        }
        for (int c = 0; c < 3; c++) {
            new_vel[3 * i + c] = vel[3 * i + c] + dt * a[c];
            new_pos[3 * i + c] = pos[3 * i + c] + dt * new_vel[3 * i + c];
        }
    }
    free(x);
}
