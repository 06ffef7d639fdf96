/* Allocates and touches MIB mebibytes. usage: alloc MIB */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    size_t bytes;
    char *memory;
    if (argc < 2) return 2;
    bytes = (size_t)atol(argv[1]) << 20;
    memory = malloc(bytes);
    if (memory == NULL) {
        printf("malloc=failed\n");
        return 1;
    }
    memset(memory, 1, bytes);
    printf("malloc=ok\n");
    return 0;
}
