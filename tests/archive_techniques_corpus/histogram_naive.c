/* techniques: none
 * why: one increment of bins[data[i]] per element.
 */
#include <stddef.h>
#include <string.h>

void histogram(size_t n, const int *data, int *bins)
{
    memset(bins, 0, 256 * sizeof(int));
    for (size_t i = 0; i < n; i++)
        bins[data[i]]++;
}
