/* techniques: openmp, simd_pragma
 * near miss for: packing
 * why: near miss for packing: positions copied once, whole, from xyz records into three
 *      contiguous arrays (not per block), then particles shared over threads with the
 *      j loop vectorised by `omp simd` over the arrays.
 */
#include <math.h>
#include <stdlib.h>

void nbody_step(int n, double dt, const double *pos, const double *vel, const double *mass, double *new_pos,
                double *new_vel)
{
    double *px = malloc(3 * sizeof(double) * (size_t)n), *py = px + n, *pz = py + n;
    if (px == NULL)
        return;
    for (int j = 0; j < n; j++) {
        px[j] = pos[3 * j];
        py[j] = pos[3 * j + 1];
        pz[j] = pos[3 * j + 2];
    }
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const double xi = px[i], yi = py[i], zi = pz[i];
        double ax = 0.0, ay = 0.0, az = 0.0;
        #pragma omp simd reduction(+:ax, ay, az)
        for (int j = 0; j < n; j++) {
            double dx = px[j] - xi, dy = py[j] - yi, dz = pz[j] - zi;
            double inv_r = 1.0 / sqrt(dx * dx + dy * dy + dz * dz + 1e-9);
            double s = mass[j] * inv_r * inv_r * inv_r;
            ax += s * dx;
            ay += s * dy;
            az += s * dz;
        }
        for (int c = 0; c < 3; c++) {
            double a = c == 0 ? ax : c == 1 ? ay : az;
            new_vel[3 * i + c] = vel[3 * i + c] + dt * a;
            new_pos[3 * i + c] = pos[3 * i + c] + dt * new_vel[3 * i + c];
        }
    }
    free(px);
}
