/* Tries to outlive the sandbox: forks a child that forks a grandchild, which calls setsid() and sleeps; the child
 * exits so the grandchild is orphaned. Then the program itself: usage: escape MARKER sleep|spin|exit
 * (MARKER only tags the command line, so the test can find every process of this tree in /proc). */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    pid_t child;
    int ready[2];
    char byte = 0;
    if (argc < 3 || pipe(ready) != 0) return 2;
    child = fork();
    if (child == 0) {
        if (fork() == 0) {
            setsid();
            printf("grandchild sid=%d\n", (int)getsid(0));
            fflush(stdout);
            if (write(ready[1], &byte, 1) != 1) _exit(1);
            for (;;) sleep(1000);
        }
        _exit(read(ready[0], &byte, 1) == 1 ? 0 : 1); /* only once the grandchild is set up */
    }
    waitpid(child, NULL, 0);
    printf("daemonised\n");
    fflush(stdout);
    if (strcmp(argv[2], "exit") == 0) return 0;
    if (strcmp(argv[2], "spin") == 0) {
        volatile unsigned long counter = 0;
        for (;;) counter++;
    }
    for (;;) sleep(1000);
}
