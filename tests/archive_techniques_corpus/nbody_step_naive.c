/* techniques: none
 * near miss for: register_blocking
 * why: near miss for register_blocking: the all-pairs step; ax, ay, az are the three
 *      components of one particle's acceleration and share mass[j] and inv_r3, but they are
 *      one iteration's result, not a block of iterations (no loop steps by more than one).
 */
#include <math.h>

void nbody_step(int n, double dt, const double *pos, const double *vel, const double *mass, double *new_pos,
                double *new_vel)
{
    const double eps2 = 1e-9;
    for (int i = 0; i < n; i++) {
        double ax = 0.0, ay = 0.0, az = 0.0;
        for (int j = 0; j < n; j++) {
            double dx = pos[3 * j] - pos[3 * i];
            double dy = pos[3 * j + 1] - pos[3 * i + 1];
            double dz = pos[3 * j + 2] - pos[3 * i + 2];
            double r2 = dx * dx + dy * dy + dz * dz + eps2;
            double inv_r = 1.0 / sqrt(r2);
            double inv_r3 = inv_r * inv_r * inv_r;
            ax += mass[j] * dx * inv_r3;
            ay += mass[j] * dy * inv_r3;
            az += mass[j] * dz * inv_r3;
        }
        new_vel[3 * i] = vel[3 * i] + dt * ax;
        new_vel[3 * i + 1] = vel[3 * i + 1] + dt * ay;
        new_vel[3 * i + 2] = vel[3 * i + 2] + dt * az;
        new_pos[3 * i] = pos[3 * i] + dt * new_vel[3 * i];
        new_pos[3 * i + 1] = pos[3 * i + 1] + dt * new_vel[3 * i + 1];
        new_pos[3 * i + 2] = pos[3 * i + 2] + dt * new_vel[3 * i + 2];
    }
}
