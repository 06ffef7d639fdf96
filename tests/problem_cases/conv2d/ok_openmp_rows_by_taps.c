/* expect: ok
 * why: an honest optimised version: rows in parallel (OpenMP), and within a row each tap is one pass of a
 *      vectorised multiply-add over the columns where it lands inside the image (no test in the inner loop). */
void conv2d(int n, const float *img, const float *kernel, float *out) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *row = out + (long)i * n;
#pragma omp simd
        for (int j = 0; j < n; j++) row[j] = 0.0f;
        for (int a = -2; a <= 2; a++) {
            if (i + a < 0 || i + a >= n) continue;
            const float *src = img + (long)(i + a) * n;
            for (int b = -2; b <= 2; b++) {
                const float k = kernel[(a + 2) * 5 + (b + 2)];
                const int lo = b < 0 ? -b : 0, hi = b > 0 ? n - b : n;
#pragma omp simd
                for (int j = lo; j < hi; j++) row[j] += k * src[j + b];
            }
        }
    }
}
