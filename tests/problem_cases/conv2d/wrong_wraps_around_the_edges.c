/* expect: wrong_answer
 * why: periodic boundaries (indices wrap around) instead of zero padding: the interior is right, only the two
 *      outermost rows and columns are wrong. */
void conv2d(int n, const float *img, const float *kernel, float *out) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int a = -2; a <= 2; a++)
                for (int b = -2; b <= 2; b++)
                    s += kernel[(a + 2) * 5 + (b + 2)] * img[((i + a + n) % n) * n + (j + b + n) % n];
            out[i * n + j] = s;
        }
}
