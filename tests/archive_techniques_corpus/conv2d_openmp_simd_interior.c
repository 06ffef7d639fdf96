/* techniques: openmp, simd_pragma
 * why: rows shared over threads; the interior columns (no bounds checks) vectorised by
 *      `omp simd`, the two-pixel border done with checks.
 */
static float pixel(int n, const float *img, const float *kernel, int i, int j)
{
    float s = 0.0f;
    for (int ki = 0; ki < 5; ki++)
        for (int kj = 0; kj < 5; kj++) {
            int y = i + ki - 2, x = j + kj - 2;
            if (y >= 0 && y < n && x >= 0 && x < n)
                s += img[y * n + x] * kernel[ki * 5 + kj];
        }
    return s;
}

void conv2d(int n, const float *img, const float *kernel, float *out)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        if (i < 2 || i >= n - 2 || n < 5) {
            for (int j = 0; j < n; j++)
                out[i * n + j] = pixel(n, img, kernel, i, j);
            continue;
        }
        for (int j = 0; j < 2; j++) {
            out[i * n + j] = pixel(n, img, kernel, i, j);
            out[i * n + n - 1 - j] = pixel(n, img, kernel, i, n - 1 - j);
        }
        #pragma omp simd
        for (int j = 2; j < n - 2; j++) {
            float s = 0.0f;
            for (int ki = 0; ki < 5; ki++)
                for (int kj = 0; kj < 5; kj++)
                    s += img[(i + ki - 2) * n + j + kj - 2] * kernel[ki * 5 + kj];
            out[i * n + j] = s;
        }
    }
}
