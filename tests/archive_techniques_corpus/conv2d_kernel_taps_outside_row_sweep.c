/* techniques: loop_order, openmp
 * why: the kernel taps ki, kj moved outside the sweep along the row: out[i][j] accumulates
 *      along the innermost j, with the 25-term reduction outside it (contiguous, vectorisable
 *      rows instead of a 5x5 gather per pixel); rows shared over threads.
 */
void conv2d(int n, const float *img, const float *kernel, float *out)
{
    #pragma omp parallel for
    for (int i = 0; i < n; i++) {
        float *o = out + i * n;
        for (int j = 0; j < n; j++)
            o[j] = 0.0f;
        for (int ki = 0; ki < 5; ki++) {
            int y = i + ki - 2;
            if (y < 0 || y >= n)
                continue;
            for (int kj = 0; kj < 5; kj++) {
                const float w = kernel[ki * 5 + kj];
                int lo = kj < 2 ? 2 - kj : 0, hi = kj > 2 ? n - (kj - 2) : n;
                for (int j = lo; j < hi; j++)
                    o[j] += w * img[y * n + j + kj - 2];
            }
        }
    }
}
