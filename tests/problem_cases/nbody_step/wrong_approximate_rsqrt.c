/* expect: wrong_answer
 * why: 1/sqrt from the hardware's approximate reciprocal square root (_mm_rsqrt_ss, 12 bits) refined by one
 *      Newton step in float (about 23 bits): the usual single-precision trick, 1e-7 relative per term where the
 *      bound allows about 1e-14. */
#include <immintrin.h>

static float inverse_sqrt(float x) {
    float y = _mm_cvtss_f32(_mm_rsqrt_ss(_mm_set_ss(x)));
    return y * (1.5f - 0.5f * x * y * y);
}

void nbody_step(int n, double dt, const double *pos, const double *vel, const double *mass, double *new_pos,
                double *new_vel) {
    for (int i = 0; i < n; i++) {
        double a[3] = {0.0, 0.0, 0.0};
        for (int j = 0; j < n; j++) {
            double d[3] = {pos[3 * j] - pos[3 * i], pos[3 * j + 1] - pos[3 * i + 1], pos[3 * j + 2] - pos[3 * i + 2]};
            double r = inverse_sqrt((float)(d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + 0.01));
            for (int c = 0; c < 3; c++) a[c] += mass[j] * d[c] * r * r * r;
        }
        for (int c = 0; c < 3; c++) {
            new_vel[3 * i + c] = vel[3 * i + c] + dt * a[c];
            new_pos[3 * i + c] = pos[3 * i + c] + dt * new_vel[3 * i + c];
        }
    }
}
