/* Forks until fork() fails; every child sleeps. Prints how many it got and why it stopped, then exits,
 * leaving its children behind for the sandbox to kill. */
#define _GNU_SOURCE /* strerrorname_np */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    int forked = 0;
    for (;;) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;) pause();
        }
        if (pid < 0) {
            printf("forked=%d\nerrno=%s\n", forked, strerrorname_np(errno));
            return 0;
        }
        forked++;
        if (forked >= 10000) {
            printf("forked=%d\nerrno=none\n", forked);
            return 0;
        }
    }
}
