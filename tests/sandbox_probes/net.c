/* Tries to reach the outside. Prints `result=connected` or `result=<errno name>`.
 * usage: net tcp PORT | net unix PATH */
#define _GNU_SOURCE /* strerrorname_np */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int fd, rc;
    if (argc < 3) return 2;
    if (strcmp(argv[1], "tcp") == 0) {
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            printf("result=%s\n", strerrorname_np(errno));
            return 0;
        }
        rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    } else {
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        strncpy(addr.sun_path, argv[2], sizeof addr.sun_path - 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0) {
            printf("result=%s\n", strerrorname_np(errno));
            return 0;
        }
        rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    }
    printf("result=%s\n", rc == 0 ? "connected" : strerrorname_np(errno));
    return 0;
}
