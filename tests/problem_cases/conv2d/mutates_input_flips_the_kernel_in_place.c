/* expect: wrong_answer
 * detail: modified its input kernel
 * why: reverses the kernel in place to run a convolution loop as the correlation asked for: the output is
 *      right, but the kernel is left reversed. */
void conv2d(int n, const float *img, const float *kernel, float *out) {
    float *k = (float *)kernel;
    for (int t = 0; t < 12; t++) {
        float swap = k[t];
        k[t] = k[24 - t];
        k[24 - t] = swap;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int a = -2; a <= 2; a++)
                for (int b = -2; b <= 2; b++)
                    if (i + a >= 0 && i + a < n && j + b >= 0 && j + b < n)
                        s += k[(2 - a) * 5 + (2 - b)] * img[(i + a) * n + (j + b)];
            out[i * n + j] = s;
        }
}
