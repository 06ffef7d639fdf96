/* expect: wrong_answer
 * why: rounds the accumulator to bfloat16 (8 significant bits) after each tap, the precision of a low-precision
 *      vector unit: about 2^15 times the float error the bound admits. */
#include <stdint.h>
#include <string.h>

static float to_bfloat16(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits = (bits + 0x8000u) & 0xffff0000u;
    memcpy(&x, &bits, sizeof x);
    return x;
}

void conv2d(int n, const float *img, const float *kernel, float *out) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int a = -2; a <= 2; a++)
                for (int b = -2; b <= 2; b++)
                    if (i + a >= 0 && i + a < n && j + b >= 0 && j + b < n)
                        s = to_bfloat16(s + kernel[(a + 2) * 5 + (b + 2)] * img[(i + a) * n + (j + b)]);
            out[i * n + j] = s;
        }
}
