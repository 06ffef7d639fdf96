/* expect: wrong_answer
 * why: the columns in blocks of 8 (a vector's width) without a remainder loop: the last n % 8 columns of every
 *      row are never written. */
void conv2d(int n, const float *img, const float *kernel, float *out) {
    for (int i = 0; i < n; i++)
        for (int j0 = 0; j0 + 8 <= n; j0 += 8)
            for (int j = j0; j < j0 + 8; j++) {
                float s = 0.0f;
                for (int a = -2; a <= 2; a++)
                    for (int b = -2; b <= 2; b++)
                        if (i + a >= 0 && i + a < n && j + b >= 0 && j + b < n)
                            s += kernel[(a + 2) * 5 + (b + 2)] * img[(i + a) * n + (j + b)];
                out[i * n + j] = s;
            }
}
