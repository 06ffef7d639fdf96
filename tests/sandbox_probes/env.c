/* Prints its environment, one VAR=value per line. */
#include <stdio.h>

extern char **environ;

int main(void) {
    for (char **entry = environ; *entry != NULL; entry++) printf("%s\n", *entry);
    return 0;
}
