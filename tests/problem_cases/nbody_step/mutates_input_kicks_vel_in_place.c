/* expect: wrong_answer
 * detail: modified its input vel
 * why: adds dt a to vel in place (an in-place integrator's habit), then copies it out: both outputs are right,
 *      but the input vel is left updated. */
#include <math.h>

void nbody_step(int n, double dt, const double *pos, const double *vel, const double *mass, double *new_pos,
                double *new_vel) {
    double *v = (double *)vel;
    for (int i = 0; i < n; i++) {
        double a[3] = {0.0, 0.0, 0.0};
        for (int j = 0; j < n; j++) {
            double d[3] = {pos[3 * j] - pos[3 * i], pos[3 * j + 1] - pos[3 * i + 1], pos[3 * j + 2] - pos[3 * i + 2]};
            double d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + 0.01;
            for (int c = 0; c < 3; c++) a[c] += mass[j] * d[c] / (d2 * sqrt(d2));
        }
        for (int c = 0; c < 3; c++) {
            v[3 * i + c] += dt * a[c];
            new_vel[3 * i + c] = v[3 * i + c];
            new_pos[3 * i + c] = pos[3 * i + c] + dt * v[3 * i + c];
        }
    }
}
