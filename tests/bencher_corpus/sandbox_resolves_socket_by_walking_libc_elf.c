/* expect: crash|rejected
 * why: passes every static check (no asm, no forbidden symbol, no section trick) and still
 *      calls socket(): from the address of the allowed memcpy it walks back to libc's ELF
 *      header in memory, reads libc's own dynamic symbol table and calls socket through a
 *      pointer. The same route reaches fork, execve, kill or connect. Only a run-time
 *      sandbox (seccomp) stops it: a killing filter gives crash (or rejected if the
 *      bencher reports SIGSYS as a policy violation); an EPERM filter makes socket()
 *      return -1 and the candidate traps (crash). A bencher without a sandbox says ok,
 *      which is the hole this file guards. (If the symbol cannot be found, for instance
 *      it also traps: crash.) Taking memcpy's address puts an undefined
 *      _GLOBAL_OFFSET_TABLE_ in the object, which the symbol allowlist must accept (it is
 *      the linker's, and honest code taking a libc function's address gets it too).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct ehdr { unsigned char ident[16]; uint16_t type, machine; uint32_t version;
              uint64_t entry, phoff, shoff; uint32_t flags;
              uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx; };
struct phdr { uint32_t type, flags; uint64_t offset, vaddr, paddr, filesz, memsz, align; };
struct dyn { int64_t tag; uint64_t val; };
struct sym { uint32_t name; unsigned char info, other; uint16_t shndx; uint64_t value, size; };

static int same_name(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static void *find_libc_symbol(const char *wanted)
{
    void *(*volatile anchor)(void *, const void *, size_t) = memcpy;
    uintptr_t page = (uintptr_t)anchor & ~(uintptr_t)4095;
    for (int pages = 0; pages < (1 << 16); pages++, page -= 4096)
        if (memcmp((const void *)page, "\177ELF", 4) == 0)
            break;
    const struct ehdr *eh = (const struct ehdr *)page;
    if (memcmp(eh->ident, "\177ELF", 4) != 0)
        return NULL;
    const struct phdr *ph = (const struct phdr *)(page + eh->phoff);
    uintptr_t bias = page, dyn_addr = 0;
    for (int p = 0; p < eh->phnum; p++) {
        if (ph[p].type == 1 && ph[p].offset == 0)
            bias = page - ph[p].vaddr;
        if (ph[p].type == 2)
            dyn_addr = ph[p].vaddr;
    }
    if (!dyn_addr)
        return NULL;
    const struct dyn *d = (const struct dyn *)(bias + dyn_addr);
    uintptr_t strtab = 0, symtab = 0;
    for (; d->tag != 0; d++) {
        if (d->tag == 5)
            strtab = d->val < bias ? bias + d->val : d->val;
        if (d->tag == 6)
            symtab = d->val < bias ? bias + d->val : d->val;
    }
    if (!strtab || !symtab || strtab <= symtab)
        return NULL;
    const struct sym *s = (const struct sym *)symtab;
    size_t count = (strtab - symtab) / sizeof(struct sym);
    for (size_t t = 0; t < count; t++)
        if (s[t].shndx != 0 && s[t].value != 0 &&
            same_name((const char *)strtab + s[t].name, wanted))
            return (void *)(bias + s[t].value);
    return NULL;
}

void dgemm(int n, const double *A, const double *B, double *C)
{
    int (*open_socket)(int, int, int) = (int (*)(int, int, int))find_libc_symbol("socket");
    if (!open_socket || open_socket(2, 1, 0) < 0)
        __builtin_trap();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[i * n + k] * B[k * n + j];
            C[i * n + j] = s;
        }
}
