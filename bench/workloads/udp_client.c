/*
** udp_client.c: the load generator of the udp workload, the same program
** for every server (corun, Node.js dgram), so that only the server
** differs. Single-threaded, epoll, non-blocking UDP sockets: it opens C
** sockets connected to HOST:PORT, then each does R round trips: send one
** datagram of SIZE bytes, wait for the same datagram to come back, check
** it, send the next. A datagram lost (no reply within 1 s) is sent again
** and counted. The clock runs from the first send to the last reply.
**
**   cc -O2 -o udp_client udp_client.c
**   ./udp_client 127.0.0.1 PORT [C=50] [R=2000] [SIZE=64]
**   RESULT udp rate=123456.7 seconds=0.8100 n=100000 resent=0
**
** udp_driver.py compiles it, starts a server and runs it.
*/

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct sock {
  int fd;
  long left;       /* round trips still to do */
  size_t len;
  char out[2048];  /* the datagram sent */
  double sent;     /* when it was sent */
} sock;

static size_t SIZE;
static long resent;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void resend(sock *s) {
  if (send(s->fd, s->out, s->len, 0) != (ssize_t)s->len) die("send");
  s->sent = now();
}

/* The datagram for socket i, round r: "s<i> r<r> " padded with 'x'. */
static void next(sock *s, int i) {
  int k = snprintf(s->out, sizeof s->out, "s%d r%ld ", i, s->left);
  memset(s->out + k, 'x', SIZE - (size_t)k);
  s->len = SIZE;
  resend(s);
}

int main(int argc, char **argv) {
  struct sockaddr_in addr;
  struct epoll_event ev, evs[64];
  int nsock, ep, i, active;
  long rounds;
  double t0, t1;
  sock *socks;
  if (argc < 3) {
    fprintf(stderr, "usage: %s HOST PORT [C] [R] [SIZE]\n", argv[0]);
    return 2;
  }
  nsock = argc > 3 ? atoi(argv[3]) : 50;
  rounds = argc > 4 ? atol(argv[4]) : 2000;
  SIZE = argc > 5 ? (size_t)atol(argv[5]) : 64;
  if (SIZE < 32 || SIZE > 2048) SIZE = 64;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) die("address");
  socks = calloc((size_t)nsock, sizeof *socks);
  if ((ep = epoll_create1(0)) < 0) die("epoll");
  for (i = 0; i < nsock; i++) {
    socks[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (socks[i].fd < 0) die("socket");
    if (connect(socks[i].fd, (struct sockaddr *)&addr, sizeof addr) < 0)
      die("connect");
    socks[i].left = rounds;
    ev.events = EPOLLIN;
    ev.data.u32 = (unsigned)i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, socks[i].fd, &ev) < 0) die("epoll_ctl");
  }
  t0 = now();
  for (i = 0; i < nsock; i++) next(&socks[i], i);
  active = nsock;
  while (active > 0) {
    int n = epoll_wait(ep, evs, 64, 100), k;
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (k = 0; k < n; k++) {
      sock *s = &socks[evs[k].data.u32];
      char in[2048];
      ssize_t got;
      while ((got = recv(s->fd, in, sizeof in, 0)) >= 0) {
        if ((size_t)got != s->len || memcmp(in, s->out, s->len) != 0)
          continue;  /* a late duplicate of a resent datagram */
        if (--s->left == 0) {
          active--;
          break;
        }
        next(s, (int)evs[k].data.u32);
      }
      if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        die("recv");
    }
    if (n == 0 || now() - t0 > 1) {  /* look for lost datagrams */
      double t = now();
      for (i = 0; i < nsock; i++)
        if (socks[i].left > 0 && t - socks[i].sent > 1.0) {
          resent++;
          resend(&socks[i]);
        }
    }
  }
  t1 = now();
  printf("RESULT udp rate=%.1f seconds=%.4f n=%ld resent=%ld\n",
         (double)nsock * rounds / (t1 - t0), t1 - t0, (long)nsock * rounds,
         resent);
  return 0;
}
