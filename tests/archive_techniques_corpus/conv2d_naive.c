/* techniques: none
 * why: the 5x5 convolution as defined: per output pixel, a scalar sum over the kernel,
 *      pixels outside the image read as zero.
 */
void conv2d(int n, const float *img, const float *kernel, float *out)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int ki = 0; ki < 5; ki++)
                for (int kj = 0; kj < 5; kj++) {
                    int y = i + ki - 2, x = j + kj - 2;
                    if (y >= 0 && y < n && x >= 0 && x < n)
                        s += img[y * n + x] * kernel[ki * 5 + kj];
                }
            out[i * n + j] = s;
        }
}
