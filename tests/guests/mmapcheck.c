/* mmap of guest files (issue 14): private copies, offsets, /dev/zero, the errno cases. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void try(const char *what, int fd, size_t len, int prot, int flags, off_t off) {
    void *p = mmap(0, len, prot, flags, fd, off);
    if (p == MAP_FAILED)
        printf("%s: %s\n", what, strerror(errno));
    else
        printf("%s: mapped\n", what);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    char *p = mmap(0, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("size %ld first %c last %c\n", (long)size, p[0], p[size - 1]);
    char *q = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    q[0] = 'X';
    printf("private write %c, other map %c\n", q[0], p[0]);
    char *s = mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 4096);
    printf("shared read-only at 4096: %c\n", s == MAP_FAILED ? '?' : s[0]);
    char buf[1];
    pread(fd, buf, 1, 0);
    printf("file unchanged: %c\n", buf[0]);
    munmap(q, size);
    int z = open("/dev/zero", O_RDWR);
    char *zp = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, z, 0);
    printf("/dev/zero: %s\n", zp != MAP_FAILED && zp[100] == 0 ? "zeros" : strerror(errno));
    try("length 0", fd, 0, PROT_READ, MAP_PRIVATE, 0);
    try("offset 100", fd, 4096, PROT_READ, MAP_PRIVATE, 100);
    try("bad descriptor", 99, 4096, PROT_READ, MAP_PRIVATE, 0);
    int pfd[2];
    pipe(pfd);
    try("pipe", pfd[0], 4096, PROT_READ, MAP_PRIVATE, 0);
    int w = open(argv[1], O_WRONLY);
    try("write-only descriptor", w, 4096, PROT_READ, MAP_PRIVATE, 0);
    try("shared writable, read-only descriptor", fd, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    int d = open("/", O_RDONLY);
    try("directory", d, 4096, PROT_READ, MAP_PRIVATE, 0);
    return 0;
}
