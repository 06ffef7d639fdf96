/* techniques: unrolling
 * why: the element loop steps by 4 into four sub-histograms (data[i] .. data[i + 3]), so
 *      runs of equal values do not serialise on one counter; summed at the end.
 */
#include <stddef.h>

void histogram(size_t n, const int *data, int *bins)
{
    int h[4][256] = {{0}};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        h[0][data[i]]++;
        h[1][data[i + 1]]++;
        h[2][data[i + 2]]++;
        h[3][data[i + 3]]++;
    }
    for (; i < n; i++)
        h[0][data[i]]++;
    for (int b = 0; b < 256; b++)
        bins[b] = h[0][b] + h[1][b] + h[2][b] + h[3][b];
}
