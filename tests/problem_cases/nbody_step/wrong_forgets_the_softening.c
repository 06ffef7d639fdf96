/* expect: wrong_answer
 * why: plain Newtonian gravity, |d|^3 without the softening 0.01 (the self term skipped): close pairs pull far
 *      harder than the problem's softened force. */
#include <math.h>

void nbody_step(int n, double dt, const double *pos, const double *vel, const double *mass, double *new_pos,
                double *new_vel) {
    for (int i = 0; i < n; i++) {
        double a[3] = {0.0, 0.0, 0.0};
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double d[3] = {pos[3 * j] - pos[3 * i], pos[3 * j + 1] - pos[3 * i + 1], pos[3 * j + 2] - pos[3 * i + 2]};
            double r = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
            for (int c = 0; c < 3; c++) a[c] += mass[j] * d[c] / (r * r * r);
        }
        for (int c = 0; c < 3; c++) {
            new_vel[3 * i + c] = vel[3 * i + c] + dt * a[c];
            new_pos[3 * i + c] = pos[3 * i + c] + dt * new_vel[3 * i + c];
        }
    }
}
