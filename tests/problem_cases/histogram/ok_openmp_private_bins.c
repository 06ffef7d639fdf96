/* expect: ok
 * why: an honest parallel histogram: each thread counts into four private copies of the bins (no conflicting
 * increments in a row), then the copies are added into bins under a critical section. */
#include <stddef.h>
#include <string.h>

void histogram(size_t n, const int *data, int *bins) {
    memset(bins, 0, 256 * sizeof(int));
#pragma omp parallel
    {
        int local[4][256];
        memset(local, 0, sizeof local);
        size_t i;
#pragma omp for schedule(static)
        for (i = 0; i < n / 4; i++) {
            local[0][data[4 * i]]++;
            local[1][data[4 * i + 1]]++;
            local[2][data[4 * i + 2]]++;
            local[3][data[4 * i + 3]]++;
        }
#pragma omp single nowait
        for (i = n / 4 * 4; i < n; i++) local[0][data[i]]++;
#pragma omp critical
        for (int b = 0; b < 256; b++) bins[b] += local[0][b] + local[1][b] + local[2][b] + local[3][b];
    }
}
