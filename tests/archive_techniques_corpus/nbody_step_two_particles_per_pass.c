/* techniques: register_blocking, unrolling
 * why: two target particles per pass (the i loop steps by 2 and reads particles i and
 *      i + 1): each load of particle j's position and mass feeds six accumulators.
 */
#include <math.h>

static void update(int i, double dt, const double *pos, const double *vel, double *new_pos, double *new_vel,
                   double ax, double ay, double az)
{
    new_vel[3 * i] = vel[3 * i] + dt * ax;
    new_vel[3 * i + 1] = vel[3 * i + 1] + dt * ay;
    new_vel[3 * i + 2] = vel[3 * i + 2] + dt * az;
    for (int c = 0; c < 3; c++)
        new_pos[3 * i + c] = pos[3 * i + c] + dt * new_vel[3 * i + c];
}

void nbody_step(int n, double dt, const double *pos, const double *vel, const double *mass, double *new_pos,
                double *new_vel)
{
    int i = 0;
    for (; i + 1 < n; i += 2) {
        const double x0 = pos[3 * i], y0 = pos[3 * i + 1], z0 = pos[3 * i + 2];
        const double x1 = pos[3 * (i + 1)], y1 = pos[3 * (i + 1) + 1], z1 = pos[3 * (i + 1) + 2];
        double ax0 = 0, ay0 = 0, az0 = 0, ax1 = 0, ay1 = 0, az1 = 0;
        for (int j = 0; j < n; j++) {
            const double xj = pos[3 * j], yj = pos[3 * j + 1], zj = pos[3 * j + 2], m = mass[j];
            double dx0 = xj - x0, dy0 = yj - y0, dz0 = zj - z0;
            double dx1 = xj - x1, dy1 = yj - y1, dz1 = zj - z1;
            double r0 = 1.0 / sqrt(dx0 * dx0 + dy0 * dy0 + dz0 * dz0 + 1e-9);
            double r1 = 1.0 / sqrt(dx1 * dx1 + dy1 * dy1 + dz1 * dz1 + 1e-9);
            double s0 = m * r0 * r0 * r0, s1 = m * r1 * r1 * r1;
            ax0 += s0 * dx0;
            ay0 += s0 * dy0;
            az0 += s0 * dz0;
            ax1 += s1 * dx1;
            ay1 += s1 * dy1;
            az1 += s1 * dz1;
        }
        update(i, dt, pos, vel, new_pos, new_vel, ax0, ay0, az0);
        update(i + 1, dt, pos, vel, new_pos, new_vel, ax1, ay1, az1);
    }
    for (; i < n; i++) {
        double ax = 0, ay = 0, az = 0;
        for (int j = 0; j < n; j++) {
            double dx = pos[3 * j] - pos[3 * i], dy = pos[3 * j + 1] - pos[3 * i + 1];
            double dz = pos[3 * j + 2] - pos[3 * i + 2];
            double r = 1.0 / sqrt(dx * dx + dy * dy + dz * dz + 1e-9);
            double s = mass[j] * r * r * r;
            ax += s * dx;
            ay += s * dy;
            az += s * dz;
        }
        update(i, dt, pos, vel, new_pos, new_vel, ax, ay, az);
    }
}
