/* techniques: none
 * near miss for: unrolling, register_blocking
 * why: near miss for unrolling and register_blocking: the loops step by 3 over the
 *      interleaved xyz records (i < 3 * n; i += 3), so pos[i], pos[i + 1], pos[i + 2] are one
 *      particle's fields, not unrolled iterations, and ax, ay, az one particle's components.
 */
#include <math.h>

void nbody_step(int n, double dt, const double *pos, const double *vel, const double *mass, double *new_pos,
                double *new_vel)
{
    for (int i = 0; i < 3 * n; i += 3) {
        double ax = 0.0, ay = 0.0, az = 0.0;
        for (int j = 0; j < 3 * n; j += 3) {
            double dx = pos[j] - pos[i], dy = pos[j + 1] - pos[i + 1], dz = pos[j + 2] - pos[i + 2];
            double inv_r = 1.0 / sqrt(dx * dx + dy * dy + dz * dz + 1e-9);
            double s = mass[j / 3] * inv_r * inv_r * inv_r;
            ax += s * dx;
            ay += s * dy;
            az += s * dz;
        }
        new_vel[i] = vel[i] + dt * ax;
        new_vel[i + 1] = vel[i + 1] + dt * ay;
        new_vel[i + 2] = vel[i + 2] + dt * az;
        for (int c = 0; c < 3; c++)
            new_pos[i + c] = pos[i + c] + dt * new_vel[i + c];
    }
}
