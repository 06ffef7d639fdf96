/* Writes a record on the result channel (fd in HPCRL_CHANNEL_FD) and noise on stdout.
 * Prints `channel=absent` when there is no channel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    const char *fd_text = getenv("HPCRL_CHANNEL_FD");
    const char record[] = "{\"gflops\": 1.5}\n";
    printf("noise on stdout\n");
    if (fd_text == NULL) {
        printf("channel=absent\n");
        return 0;
    }
    if (write(atoi(fd_text), record, strlen(record)) != (ssize_t)strlen(record)) return 1;
    return 0;
}
