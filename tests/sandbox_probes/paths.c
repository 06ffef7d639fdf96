/* What can the program see of the host's files? For each argument `r:PATH` (open and read a byte) or `w:PATH`
 * (create and write a byte) prints `ARG=ok` or `ARG=<errno name>`; for `d:PATH` the directory's entries
 * (`d:PATH=name,name,...`, without . and ..) or the errno name.
 * usage: paths r:/etc/passwd w:/tmp/work/x d:/home ... */
#define _GNU_SOURCE /* strerrorname_np */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int attempt(char mode, const char *path) {
    int fd = open(path, mode == 'w' ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
    if (fd < 0) return -1;
    char byte = 'x';
    ssize_t done = mode == 'w' ? write(fd, &byte, 1) : read(fd, &byte, 1);
    int saved = errno;
    close(fd);
    errno = saved;
    return done < 0 ? -1 : 0;
}

static void list(const char *arg, const char *path) {
    DIR *dir = opendir(path);
    if (!dir) {
        printf("%s=%s\n", arg, strerrorname_np(errno));
        return;
    }
    const char *separator = "";
    struct dirent *entry;
    printf("%s=", arg);
    while ((entry = readdir(dir)))
        if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, "..")) {
            printf("%s%s", separator, entry->d_name);
            separator = ",";
        }
    printf("\n");
    closedir(dir);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strlen(arg) < 3 || arg[1] != ':' || !strchr("rwd", arg[0])) return 2;
        if (arg[0] == 'd')
            list(arg, arg + 2);
        else
            printf("%s=%s\n", arg, attempt(arg[0], arg + 2) == 0 ? "ok" : strerrorname_np(errno));
    }
    return 0;
}
