/* Benchmark helper: opens N keep-alive connections to a server, makes one request on each
 * (GET PATH), keeps them all open and idle, and reports the server's resident memory
 * (VmRSS of PID) before and with the idle connections, then checks they are still open.
 * Usage: bench_http_idle PORT N SERVER_PID [PATH] */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static long rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_http_idle PORT N SERVER_PID [PATH]\n");
        return 2;
    }
    int port = atoi(argv[1]), n = atoi(argv[2]), pid = atoi(argv[3]);
    const char *path = argc > 4 ? argv[4] : "/healthz";
    char req[256];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    int *fds = calloc((size_t)n, sizeof *fds);
    long before = rss_kb(pid);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            fprintf(stderr, "connection %d: %s\n", i, strerror(errno));
            if (fd >= 0)
                close(fd);
            fds[i] = -1;
            continue;
        }
        if (write(fd, req, (size_t)rl) != rl) {
            close(fd);
            fds[i] = -1;
            continue;
        }
        char buf[1024];
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) == 1 && read(fd, buf, sizeof buf) > 12 && !strncmp(buf + 9, "200", 3))
            ok++;
        fds[i] = fd;
    }
    sleep(1);
    long with = rss_kb(pid);
    /* still open? a closed connection reads EOF at once */
    int alive = 0;
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        if (poll(&p, 1, 0) == 0)
            alive++;
    }
    printf("idle connections: %d answered, %d still open; server RSS %.1f MB before, %.1f MB with them "
           "(%.2f KB per connection)\n",
           ok, alive, before / 1024.0, with / 1024.0, (double)(with - before) / (alive ? alive : 1));
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    return ok == n && alive == n ? 0 : 1;
}
