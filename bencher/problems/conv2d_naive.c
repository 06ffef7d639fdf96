/* The naive reference of `conv2d`: for each output pixel, the 25 taps in order with a bounds test each,
 * one float accumulator, no threads, no vectorisation hints. Speedups are measured against it on each node. */
void conv2d(int n, const float *img, const float *kernel, float *out) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int a = -2; a <= 2; a++)
                for (int b = -2; b <= 2; b++)
                    if (i + a >= 0 && i + a < n && j + b >= 0 && j + b < n)
                        s += kernel[(a + 2) * 5 + (b + 2)] * img[(i + a) * n + (j + b)];
            out[i * n + j] = s;
        }
}
