/*
** echo_client.c: the load generator of the echo workload, the same program
** for every server (corun, Node.js, asyncio), so that only the server
** differs. Single-threaded, epoll, non-blocking sockets with TCP_NODELAY:
** it opens C connections to HOST:PORT, then each connection does R
** round trips: write one line of LINE bytes (newline included), wait until
** the same line has come back, check it, write the next. The clock runs
** from the first write to the last reply (connecting is not timed).
**
**   cc -O2 -o echo_client echo_client.c
**   ./echo_client 127.0.0.1 PORT [C=50] [R=2000] [LINE=64]
**   RESULT echo rate=123456.7 seconds=0.8100 n=100000
**
** echo_driver.py compiles it, starts a server and runs it.
*/

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
  int fd;
  long left;       /* round trips still to start */
  size_t got;      /* bytes of the current reply received */
  char line[256];  /* the line sent */
  char in[256];    /* the reply so far */
} conn;

static size_t LINE;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The line for connection i, round r: "c<i> r<r> " padded with 'x'. */
static void makeline(conn *c, int i, long r) {
  int k = snprintf(c->line, sizeof c->line, "c%d r%ld ", i, r);
  memset(c->line + k, 'x', LINE - 1 - (size_t)k);
  c->line[LINE - 1] = '\n';
}

static void sendline(conn *c, int i) {
  size_t off = 0;
  makeline(c, i, c->left);
  c->left--;
  c->got = 0;
  while (off < LINE) {  /* a 64-byte write into an empty socket buffer */
    ssize_t n = write(c->fd, c->line + off, LINE - off);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      die("write");
    }
    off += (size_t)n;
  }
}

int main(int argc, char **argv) {
  const char *host = argc > 1 ? argv[1] : "127.0.0.1";
  int port = argc > 2 ? atoi(argv[2]) : 0;
  int nconn = argc > 3 ? atoi(argv[3]) : 50;
  long rounds = argc > 4 ? atol(argv[4]) : 2000;
  struct sockaddr_in sa;
  struct epoll_event ev, evs[64];
  conn *cs;
  int ep, i, active = 0, one = 1;
  long done = 0;
  double t0, dt;
  LINE = argc > 5 ? (size_t)atoi(argv[5]) : 64;
  if (port <= 0 || nconn <= 0 || rounds < 0 || LINE < 24 || LINE > 255) {
    fprintf(stderr, "usage: echo_client HOST PORT [CONNS] [ROUNDS] [LINE]\n");
    return 2;
  }
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) die("inet_pton");
  if ((ep = epoll_create1(0)) < 0) die("epoll_create1");
  cs = (conn *)calloc((size_t)nconn, sizeof *cs);
  for (i = 0; i < nconn; i++) {
    conn *c = &cs[i];
    if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) die("socket");
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->left = rounds;
    ev.events = EPOLLIN;
    ev.data.u32 = (unsigned)i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
  }
  t0 = now();
  for (i = 0; i < nconn; i++)
    if (cs[i].left > 0) {
      sendline(&cs[i], i);
      active++;
    }
  while (active > 0) {
    int k, n = epoll_wait(ep, evs, 64, 10000);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    if (n == 0) {
      fprintf(stderr, "echo_client: no reply for 10 s\n");
      return 1;
    }
    for (k = 0; k < n; k++) {
      int id = (int)evs[k].data.u32;
      conn *c = &cs[id];
      ssize_t r = read(c->fd, c->in + c->got, sizeof c->in - c->got);
      if (r < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        die("read");
      }
      if (r == 0) {
        fprintf(stderr, "echo_client: connection %d closed early\n", id);
        return 1;
      }
      c->got += (size_t)r;
      if (c->got > LINE) {
        fprintf(stderr, "echo_client: connection %d: too much data\n", id);
        return 1;
      }
      if (c->got < LINE) continue;
      if (memcmp(c->in, c->line, LINE) != 0) {
        fprintf(stderr, "echo_client: connection %d: wrong echo\n", id);
        return 1;
      }
      done++;
      if (c->left > 0) sendline(c, id);
      else active--;
    }
  }
  dt = now() - t0;
  for (i = 0; i < nconn; i++) close(cs[i].fd);
  printf("RESULT echo rate=%.1f seconds=%.4f n=%ld\n",
         dt > 0 ? done / dt : 0.0, dt, done);
  return 0;
}
