/* expect: wrong_answer
 * why: a true convolution (kernel flipped) where the problem asks for a correlation: right shape and
 *      magnitude, wrong everywhere (the random kernel is not symmetric). */
void conv2d(int n, const float *img, const float *kernel, float *out) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int a = -2; a <= 2; a++)
                for (int b = -2; b <= 2; b++)
                    if (i + a >= 0 && i + a < n && j + b >= 0 && j + b < n)
                        s += kernel[(2 - a) * 5 + (2 - b)] * img[(i + a) * n + (j + b)];
            out[i * n + j] = s;
        }
}
