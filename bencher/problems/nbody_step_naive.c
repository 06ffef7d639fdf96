/* The naive reference of `nbody_step`: the direct O(n^2) sum of the textbook, one body at a time, with a
 * scalar accumulator per component and the distance cubed from sqrt; no threads, no vectorisation hints. */
#include <math.h>

void nbody_step(int n, double dt, const double *pos, const double *vel, const double *mass, double *new_pos,
                double *new_vel) {
    for (int i = 0; i < n; i++) {
        double ax = 0.0, ay = 0.0, az = 0.0;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double dx = pos[3 * j] - pos[3 * i], dy = pos[3 * j + 1] - pos[3 * i + 1], dz = pos[3 * j + 2] - pos[3 * i + 2];
            double dist = sqrt(dx * dx + dy * dy + dz * dz + 0.01);
            double f = mass[j] / (dist * dist * dist);
            ax += f * dx;
            ay += f * dy;
            az += f * dz;
        }
        new_vel[3 * i] = vel[3 * i] + dt * ax;
        new_vel[3 * i + 1] = vel[3 * i + 1] + dt * ay;
        new_vel[3 * i + 2] = vel[3 * i + 2] + dt * az;
        for (int c = 0; c < 3; c++) new_pos[3 * i + c] = pos[3 * i + c] + dt * new_vel[3 * i + c];
    }
}
