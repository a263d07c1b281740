/*
** stream.c
** Streams over libuv streams (TCP connections, pipes, process stdio) and
** TCP clients and servers.
**
** A stream userdata owns a malloc'd libuv handle (freed in its close
** callback) whose 'data' points back at the stream until the stream is
** closed or collected. Reads fill an internal buffer that libuv writes into
** directly; a reader parks until the buffer can answer it. Reading stops
** while more than HIGH_WATER bytes wait unread, so a slow reader bounds
** memory. Writes copy their data into the write request; a writer parks
** while more than HIGH_WATER bytes of its writes have not completed, until
** LOW_WATER. Closing
** flushes queued writes (uv_shutdown) before closing the handle.
** libuv callbacks only record results and wake tasks; nothing raises there
** and only the driver resumes tasks.
*/

#define _GNU_SOURCE           /* accept4 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "corun.h"

#define HIGH_WATER (64 * 1024)
#define LOW_WATER  (16 * 1024)
#define READ_CHUNK (64 * 1024)
#define TRY_BUFS 8            /* a write of more strings is queued whole */
#define CR_STREAM_MAGIC 0x7a5c0020u

typedef struct cr_stream {
  cr_loop *loop;
  uv_stream_t *h;             /* owned: freed in its close callback */
  char *buf;                  /* owned: unread data at buf[pos..len) */
  size_t pos, len, cap;
  int eof;                    /* the peer closed its end */
  int err;                    /* a read error (libuv code), or 0 */
  int werr;                   /* the first write error, or 0 */
  size_t queued;              /* bytes of writes not yet completed */
  int reading;                /* uv_read_start is active */
  int closed;
  int pinned;                 /* s:_ref() chose; else the handle keeps the
                              ** loop alive only while a reader waits */
  cr_list readers, writers;   /* parked tasks */
  unsigned magic;
} cr_stream;

static cr_stream *checkstream(lua_State *L) {
  cr_stream *s = cr_testobj(L, 1, cr_stream, CR_STREAM_MAGIC);
  if (s == NULL) luaL_typeerror(L, 1, CR_STREAM_MT);
  return s;
}


static void on_close_free(uv_handle_t *h) {
  free(h);
}

/* {=================================================================
** Reading
** ================================================================== */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  cr_stream *s = (cr_stream *)h->data;
  (void)hint;
  b->base = NULL;
  b->len = 0;
  if (s == NULL) return;
  if (s->pos > 0 && s->pos == s->len) s->pos = s->len = 0;
  if (s->cap - s->len < READ_CHUNK) {
    size_t live = s->len - s->pos, cap = live + READ_CHUNK;
    char *nb = (char *)malloc(cap);
    if (nb == NULL) return;  /* libuv reports UV_ENOBUFS */
    if (live > 0) memcpy(nb, s->buf + s->pos, live);
    free(s->buf);
    s->buf = nb;
    s->cap = cap;
    s->pos = 0;
    s->len = live;
  }
  b->base = s->buf + s->len;
  b->len = s->cap - s->len;
}

static void stopreading(cr_stream *s) {
  if (s->reading) {
    uv_read_stop(s->h);
    s->reading = 0;
  }
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b) {
  cr_stream *s = (cr_stream *)h->data;
  (void)b;
  if (s == NULL || n == 0) return;
  if (n > 0)
    s->len += (size_t)n;
  else {
    if (n == UV_EOF) s->eof = 1;
    else s->err = (int)n;
    stopreading(s);
  }
  if (cr_wait_wakeone(&s->readers, CR_OK) != NULL)
    return;
  if (s->len - s->pos >= HIGH_WATER)
    stopreading(s);  /* nobody reads: do not buffer without bound */
}

/* An open stream nobody waits on does not keep the loop alive (pending
** writes do: libuv counts their requests). */
static void autoref(cr_stream *s) {
  if (s->pinned || s->h == NULL) return;
  if (cr_list_empty(&s->readers)) uv_unref((uv_handle_t *)s->h);
  else uv_ref((uv_handle_t *)s->h);
}

static int startreading(cr_stream *s) {
  int r = 0;
  if (!s->reading && !s->eof && s->err == 0) {
    r = uv_read_start(s->h, on_alloc, on_read);
    if (r == 0) s->reading = 1;
  }
  return r;
}

/* Push and consume 'n' buffered bytes. */
static void consume(lua_State *L, cr_stream *s, size_t n, size_t skip) {
  lua_pushlstring(L, s->buf + s->pos, n);
  s->pos += n + skip;
}

/* Offset of the first 'dl'-byte delimiter 'd' in p[0..n), or -1. */
static long find_delim(const char *p, size_t n, const char *d, size_t dl) {
  const char *q = p, *end = p + n;
  if (dl == 0 || n < dl) return -1;
  while ((q = (const char *)memchr(q, d[0], (size_t)(end - q))) != NULL) {
    if ((size_t)(end - q) < dl) return -1;
    if (memcmp(q, d, dl) == 0) return (long)(q - p);
    q++;
  }
  return -1;
}

/* Try to answer a read now: 1 (result pushed), or 0 (more data needed).
** fmt: 'n' (exactly 'n' bytes, fewer at EOF), 'l' (a line without its
** end, "\n" or "\r\n"), 'L' (a line with its end as it came), 'a', 'u'
** (up to the delimiter at index 2, which is consumed but not returned). */
static int answer(lua_State *L, cr_stream *s, int fmt, size_t n) {
  size_t avail = s->len - s->pos;
  int done = s->eof || s->err != 0 || s->closed;
  if (fmt == 'n') {
    if (avail >= n || (done && avail > 0)) {
      consume(L, s, avail < n ? avail : n, 0);
      return 1;
    }
  }
  else if (fmt == 'l' || fmt == 'L' || fmt == 'u') {
    size_t dl = 1;
    const char *d = "\n";
    long k;
    if (fmt == 'u') d = lua_tolstring(L, 2, &dl);
    k = avail > 0 ? find_delim(s->buf + s->pos, avail, d, dl) : -1;
    if (k >= 0) {
      size_t m = (size_t)k;
      if (fmt == 'L')
        consume(L, s, m + 1, 0);
      else if (fmt == 'l' && m > 0 && s->buf[s->pos + m - 1] == '\r')
        consume(L, s, m - 1, 2);
      else
        consume(L, s, m, dl);
      return 1;
    }
    if (done && avail > 0) {
      consume(L, s, avail, 0);
      return 1;
    }
  }
  else if (done) {  /* 'a' */
    consume(L, s, avail, 0);
    if (s->err != 0) {
      lua_pop(L, 1);
      return cr_pusherror(L, s->err);
    }
    return 1;
  }
  if (!done) return 0;
  if (s->err != 0) return cr_pusherror(L, s->err);
  lua_pushnil(L);  /* end of stream */
  return 1;
}

static int parsefmt(lua_State *L, int arg, size_t *n) {
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer k = luaL_checkinteger(L, arg);
    luaL_argcheck(L, k >= 0, arg, "size must be >= 0");
    *n = (size_t)k;
    return 'n';
  }
  else {
    const char *f = luaL_optstring(L, arg, "l");
    if (*f == '*') f++;  /* Lua 5.1 style "*l" */
    luaL_argcheck(L, *f == 'l' || *f == 'L' || *f == 'a', arg,
                  "invalid format (use a size, \"l\", \"L\" or \"a\")");
    return *f;
  }
}

static int read_k(lua_State *L, int status, lua_KContext ctx);

/* The frame is [stream, fmt or delimiter, deadline] (deadline < 0: none). */
static int read_(lua_State *L, cr_stream *s, int fmt, size_t n) {
  int r;
  cr_task *t;
  double deadline = lua_tonumber(L, 3), timeout = -1;
  if (fmt == 'n' && n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  if ((r = answer(L, s, fmt, n)) != 0) return r;
  t = cr_task_enter(L, s->loop, fmt == 'u' ? "read_until" : "read");
  if ((r = startreading(s)) != 0) return cr_pusherror(L, r);
  if (deadline >= 0) {
    timeout = deadline - cr_loop_now(s->loop);
    if (timeout < 0) timeout = 0;
  }
  cr_task_checkcancel(L, t);  /* so that the park below links the reader */
  if (!s->pinned) uv_ref((uv_handle_t *)s->h);
  return cr_wait_on(L, t, &s->readers, timeout, (lua_KContext)fmt, read_k);
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  cr_stream *s = checkstream(L);
  size_t n = 0;
  int fmt = (int)ctx;
  (void)status;
  if (fmt == 'n') parsefmt(L, 2, &n);
  lua_settop(L, 3);
  autoref(s);
  if (s->loop->current->outcome != CR_OK && cr_list_empty(&s->readers))
    stopreading(s);  /* nobody waits: do not keep the loop alive */
  if (cr_task_outcome(L, s->loop->current) == CR_TIMEOUT) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  if (s->closed) {
    int r = answer(L, s, fmt, n);
    if (r == 0) {
      lua_pushnil(L);
      r = 1;
    }
    return r;
  }
  return read_(L, s, fmt, n);
}

/* stream:read([fmt], [timeout]) */
static int stream_read(lua_State *L) {
  cr_stream *s = checkstream(L);
  size_t n = 0;
  int fmt = parsefmt(L, 2, &n);
  double timeout = cr_opttimeout(L, 3);
  lua_settop(L, 2);
  lua_pushnumber(L, timeout < 0 ? -1 : cr_loop_now(s->loop) + timeout);
  if (s->closed && s->len == s->pos) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  return read_(L, s, fmt, n);
}

/* stream:read_until(delim, [timeout]): the data before the next 'delim'
** (which is consumed), or what is left at the end of the stream. */
static int stream_read_until(lua_State *L) {
  cr_stream *s = checkstream(L);
  size_t dl;
  double timeout;
  luaL_checklstring(L, 2, &dl);
  luaL_argcheck(L, dl > 0, 2, "delimiter must not be empty");
  timeout = cr_opttimeout(L, 3);
  lua_settop(L, 2);
  lua_pushnumber(L, timeout < 0 ? -1 : cr_loop_now(s->loop) + timeout);
  if (s->closed && s->len == s->pos) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  return read_(L, s, 'u', 0);
}

/* Push host and port of address 'sa'; returns 2 (or nil, err). */
static int pushaddr(lua_State *L, const struct sockaddr_storage *sa) {
  char host[64];
  int port, r;
  if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    r = uv_ip6_name(a, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    r = uv_ip4_name(a, host, sizeof host);
    port = ntohs(a->sin_port);
  }
  if (r != 0) return cr_pusherror(L, r);
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

/* stream:peername() -> host, port of a TCP stream's peer, or nil, err. */
static int stream_peername(lua_State *L) {
  cr_stream *s = checkstream(L);
  struct sockaddr_storage sa;
  int len = sizeof sa, r;
  if (s->h == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (s->h->type != UV_TCP) {
    lua_pushnil(L);
    lua_pushliteral(L, "ENOTSOCK: not a TCP stream");
    return 2;
  }
  r = uv_tcp_getpeername((uv_tcp_t *)s->h, (struct sockaddr *)&sa, &len);
  if (r != 0) return cr_pusherror(L, r);
  return pushaddr(L, &sa);
}

/* }================================================================= */


/* {=================================================================
** Writing and closing
** ================================================================== */

typedef struct wreq {
  uv_write_t req;
  size_t len;
  char data[1];
} wreq;

static void on_write(uv_write_t *req, int status) {
  cr_stream *s = (cr_stream *)req->handle->data;
  size_t len = ((wreq *)req)->len;
  free(req);
  if (s == NULL) return;
  s->queued -= len;
  if (status < 0 && s->werr == 0 && status != UV_ECANCELED) s->werr = status;
  if (s->queued <= LOW_WATER || status < 0) cr_wait_wakeall(&s->writers, CR_OK);
}

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  cr_stream *s = checkstream(L);
  (void)status; (void)ctx;
  if (cr_task_outcome(L, s->loop->current) == CR_CLOSED) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (s->werr != 0) return cr_pusherror(L, s->werr);
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:write(...): strings or numbers, sent in order. With nothing
** queued, the data is first written at once from the strings themselves
** (uv_try_write: no copy, no request, and libuv does not re-arm the
** descriptor); what the kernel does not take then is copied and queued. */
static int stream_write(lua_State *L) {
  cr_stream *s = checkstream(L);
  int i, n = lua_gettop(L), r;
  size_t total = 0, len, done = 0, skip;
  wreq *w;
  uv_buf_t b, direct[TRY_BUFS];
  for (i = 2; i <= n; i++) {
    luaL_checklstring(L, i, &len);
    total += len;
  }
  if (s->closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (s->werr != 0) return cr_pusherror(L, s->werr);
  if (total == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (n - 1 <= TRY_BUFS && s->queued == 0 && s->h->write_queue_size == 0) {
    for (i = 2; i <= n; i++) {
      const char *p = lua_tolstring(L, i, &len);
      direct[i - 2] = uv_buf_init((char *)p, (unsigned)len);
    }
    r = uv_try_write(s->h, direct, (unsigned)(n - 1));
    if (r > 0) done = (size_t)r;  /* an error: uv_write below reports it */
    if (done == total) {
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  total -= done;
  w = (wreq *)malloc(sizeof *w + total);
  if (w == NULL) return luaL_error(L, "write: not enough memory");
  for (i = 2, total = 0, skip = done; i <= n; i++) {
    const char *p = lua_tolstring(L, i, &len);
    if (skip >= len) {
      skip -= len;
      continue;
    }
    memcpy(w->data + total, p + skip, len - skip);
    total += len - skip;
    skip = 0;
  }
  b = uv_buf_init(w->data, (unsigned)total);
  w->len = total;
  if ((r = uv_write(&w->req, s->h, &b, 1, on_write)) != 0) {
    free(w);
    return cr_pusherror(L, r);
  }
  s->queued += total;
  if (s->queued > HIGH_WATER && s->loop->current != NULL &&
      s->loop->current->co == L && lua_isyieldable(L)) {
    lua_settop(L, 1);
    return cr_wait_on(L, s->loop->current, &s->writers, -1, 0, write_k);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  uv_close((uv_handle_t *)req->handle, on_close_free);
  free(req);
}

/* Detach the stream from its handle and close the handle, after flushing
** what is queued when 'flush'. */
static void closehandle(cr_stream *s, int flush) {
  uv_shutdown_t *req;
  if (s->h == NULL) return;
  s->h->data = NULL;
  stopreading(s);
  req = flush && s->h->write_queue_size > 0
        ? (uv_shutdown_t *)malloc(sizeof *req) : NULL;
  if (req == NULL || uv_shutdown(req, s->h, on_shutdown) != 0) {
    free(req);
    uv_close((uv_handle_t *)s->h, on_close_free);
  }
  s->h = NULL;
}

static int stream_close(lua_State *L) {
  cr_stream *s = checkstream(L);
  if (!s->closed) {
    s->closed = 1;
    closehandle(s, 1);
    cr_wait_wakeall(&s->readers, CR_OK);
    cr_wait_wakeall(&s->writers, CR_CLOSED);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* s:_ref(on): whether this stream keeps the loop alive (the process pool
** references a worker's pipe only while a job is in flight). */
static int stream_ref(lua_State *L) {
  cr_stream *s = checkstream(L);
  s->pinned = 1;
  if (s->h != NULL) {
    if (lua_toboolean(L, 2)) uv_ref((uv_handle_t *)s->h);
    else uv_unref((uv_handle_t *)s->h);
  }
  return 0;
}

static int stream_gc(lua_State *L) {
  cr_stream *s = (cr_stream *)lua_touserdata(L, 1);
  closehandle(s, 1);
  free(s->buf);
  s->buf = NULL;
  return 0;
}

static int stream_tostring(lua_State *L) {
  cr_stream *s = checkstream(L);
  lua_pushfstring(L, "corun.stream (%s): %p", s->closed ? "closed" : "open",
                  (void *)s);
  return 1;
}

/* Push a new stream over handle 'h' (already initialised on the loop). */
cr_stream *cr_stream_push(lua_State *L, cr_loop *lp, uv_stream_t *h) {
  cr_stream *s = (cr_stream *)lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->loop = lp;
  s->magic = CR_STREAM_MAGIC;
  cr_list_init(&s->readers);
  cr_list_init(&s->writers);
  luaL_setmetatable(L, CR_STREAM_MT);
  s->h = h;
  h->data = s;
  autoref(s);
  return s;
}

/* For other files (sockopt.c): the stream at 'idx' (NULL if it is not
** one), its libuv handle (NULL once closed), and its buffered bytes. */
static cr_stream *tostream(lua_State *L, int idx) {
  return cr_testobj(L, idx, cr_stream, CR_STREAM_MAGIC);
}

uv_stream_t *cr_stream_handle(lua_State *L, int idx) {
  cr_stream *s = tostream(L, idx);
  return s != NULL && !s->closed ? s->h : NULL;
}

size_t cr_stream_buffered(lua_State *L, int idx) {
  cr_stream *s = tostream(L, idx);
  return s != NULL ? s->len - s->pos : 0;
}

/* Push (and consume) up to 'max' buffered bytes of the stream at 'idx'. */
void cr_stream_take(lua_State *L, int idx, size_t max) {
  cr_stream *s = tostream(L, idx);
  size_t avail = s != NULL ? s->len - s->pos : 0;
  if (avail == 0) {
    lua_pushliteral(L, "");
    return;
  }
  consume(L, s, avail < max ? avail : max, 0);
}

/* For http_server.c's parser, which reads a stream's buffer in place: the
** buffered bytes of the stream at 'idx' (NULL and 0 when it is not a
** stream or nothing is buffered), and consuming 'n' of them. */
const char *cr_stream_peek(lua_State *L, int idx, size_t *len) {
  cr_stream *s = tostream(L, idx);
  *len = s != NULL ? s->len - s->pos : 0;
  return *len > 0 ? s->buf + s->pos : NULL;
}

void cr_stream_skip(lua_State *L, int idx, size_t n) {
  cr_stream *s = tostream(L, idx);
  if (s != NULL) s->pos += n <= s->len - s->pos ? n : s->len - s->pos;
}

/* }================================================================= */


/* {=================================================================
** TCP clients: resolve, then try each address in turn.
** ================================================================== */

typedef struct connop {
  uv_getaddrinfo_t gai;
  uv_connect_t conn;
  uv_tcp_t *tcp;              /* owned until handed to a stream */
  struct addrinfo *res, *next;
  cr_loop *loop;
  cr_list waiters;            /* the connecting task */
  int status;                 /* 0 while pending; 1 connected; < 0 error */
  int abandoned;              /* the task gave up: callbacks clean up */
} connop;

static void connop_free(connop *op) {
  if (op->res != NULL) uv_freeaddrinfo(op->res);
  if (op->tcp != NULL) uv_close((uv_handle_t *)op->tcp, on_close_free);
  free(op);
}

static void connop_done(connop *op, int status) {
  op->status = status;
  if (op->abandoned) {
    connop_free(op);
    return;
  }
  cr_wait_wakeone(&op->waiters, CR_OK);
}

static void on_connect(uv_connect_t *req, int status);

/* Connect to the next address; 0 when an attempt has started. */
static int trynext(connop *op, int last) {
  while (op->next != NULL) {
    struct addrinfo *ai = op->next;
    op->next = ai->ai_next;
    if (op->tcp != NULL) uv_close((uv_handle_t *)op->tcp, on_close_free);
    op->tcp = (uv_tcp_t *)malloc(sizeof *op->tcp);
    if (op->tcp == NULL) return UV_ENOMEM;
    uv_tcp_init(&op->loop->uv, op->tcp);
    last = uv_tcp_connect(&op->conn, op->tcp, ai->ai_addr, on_connect);
    if (last == 0) return 0;
  }
  return last;
}

static void on_connect(uv_connect_t *req, int status) {
  connop *op = cr_container_of(req, connop, conn);
  if (status == 0) {
    connop_done(op, 1);
    return;
  }
  if (op->abandoned || (status = trynext(op, status)) != 0)
    connop_done(op, status);
}

static void on_resolve(uv_getaddrinfo_t *req, int status,
                       struct addrinfo *res) {
  connop *op = cr_container_of(req, connop, gai);
  op->res = op->next = res;
  if (status == 0 && !op->abandoned) status = trynext(op, UV_EADDRNOTAVAIL);
  if (status != 0 || op->abandoned) connop_done(op, status ? status : -1);
}

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  connop *op = (connop *)ctx;
  cr_task *me = op->loop->current;
  (void)status;
  if (op->status == 0) {  /* timed out or cancelled first */
    op->abandoned = 1;     /* closing cancels the connect: its callback */
    if (op->tcp != NULL) { /* (or the resolver's) then frees op */
      uv_close((uv_handle_t *)op->tcp, on_close_free);
      op->tcp = NULL;
    }
    cr_task_outcome(L, me);  /* raises Cancelled */
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  if (op->status < 0) {
    int e = op->status;
    connop_free(op);
    return cr_pusherror(L, e);
  }
  cr_stream_push(L, op->loop, (uv_stream_t *)op->tcp);
  op->tcp = NULL;
  connop_free(op);
  return 1;
}

/* tcp.connect(host, port, [timeout]) -> stream | nil, err */
static int tcp_connect(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  double timeout = cr_opttimeout(L, 3);
  struct addrinfo hints;
  char service[16];
  connop *op;
  cr_task *me;
  int r;
  if (port <= 0 || port >= 65536)
    cr_argerror(L, 2, "connect", "port must be 1..65535");
  me = cr_task_enter(L, lp, "connect");
  cr_task_checkcancel(L, me);
  op = (connop *)calloc(1, sizeof *op);
  if (op == NULL) return luaL_error(L, "connect: not enough memory");
  op->loop = lp;
  cr_list_init(&op->waiters);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(service, sizeof service, "%d", (int)port);
  r = uv_getaddrinfo(&lp->uv, &op->gai, on_resolve, host, service, &hints);
  if (r != 0) {
    free(op);
    return cr_pusherror(L, r);
  }
  return cr_wait_on(L, me, &op->waiters, timeout, (lua_KContext)op,
                    connect_k);
}

/* }================================================================= */


/* {=================================================================
** TCP servers: each connection runs handler(stream) as a new task.
** A server's uservalues: 1 the handler, 2 its handlers' tasks (weak
** keys, for close({cancel = true})), 3 opts.on_error or nil.
** ================================================================== */

typedef struct cr_server {
  cr_loop *loop;
  uv_poll_t *poll;            /* owned: its close callback closes fd */
  uv_timer_t *retry;          /* owned: resumes accepting after errors */
  int fd;                     /* the listening socket */
  int ref;                    /* anchor while listening */
  int port;
  char host[64];              /* the bound address */
  int failing;                /* in a burst of accept errors: reported */
} cr_server;

#define CR_SERVER_MT "corun.server"
#define ACCEPT_BATCH 64       /* connections accepted per wake-up */
#define RETRY_MS 50           /* pause after an accept error */

/* In a pcall: spawn handler(stream) for accepted socket 'fd'. */
static int accept_p(lua_State *L) {
  cr_server *sv = (cr_server *)lua_touserdata(L, 1);
  int fd = (int)lua_tointeger(L, 2);
  uv_tcp_t *c = (uv_tcp_t *)malloc(sizeof *c);
  if (c == NULL) {
    close(fd);
    return luaL_error(L, "not enough memory");
  }
  uv_tcp_init(&sv->loop->uv, c);
  if (uv_tcp_open(c, (uv_os_sock_t)fd) != 0) {
    close(fd);
    uv_close((uv_handle_t *)c, on_close_free);
    return 0;
  }
  cr_loop_pushanchored(L, sv->loop, CR_LUV_HANDLES, sv->ref);
  lua_getiuservalue(L, -1, 1);  /* the handler */
  cr_stream_push(L, sv->loop, (uv_stream_t *)c);
  cr_task_spawn(L, sv->loop, lua_gettop(L) - 1, 1);
  lua_getiuservalue(L, -4, 2);  /* the handlers' tasks (weak keys) */
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  return 0;
}

/* In a pcall: report accept error 'err' to opts.on_error(msg, code),
** called soon, or on stderr. */
static int report_p(lua_State *L) {
  cr_server *sv = (cr_server *)lua_touserdata(L, 1);
  int err = (int)lua_tointeger(L, 2);
  cr_loop_pushanchored(L, sv->loop, CR_LUV_HANDLES, sv->ref);
  if (lua_getiuservalue(L, -1, 3) == LUA_TNIL) {  /* opts.on_error */
    fprintf(stderr, "corun: tcp server on port %d: accept failed: %s: %s "
            "(connections wait until it can accept again)\n", sv->port,
            uv_err_name(err), uv_strerror(err));
    fflush(stderr);
    return 0;
  }
  lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  cr_loop_callback(L, sv->loop, -3, 2, -1);
  return 0;
}

static void on_readable(uv_poll_t *h, int status, int events);

static void on_retry(uv_timer_t *t) {
  cr_server *sv = (cr_server *)t->data;
  if (sv != NULL && sv->poll != NULL)
    uv_poll_start(sv->poll, UV_READABLE, on_readable);
}

/* Accepting failed with 'err' (EMFILE, ENFILE, ENOBUFS, ...): the pending
** connections stay in the backlog; try again after a pause. The first
** error of a burst (until an accept succeeds again) is reported. */
static void accept_failed(cr_server *sv, int err) {
  lua_State *L = sv->loop->L;
  uv_poll_stop(sv->poll);
  uv_timer_start(sv->retry, on_retry, RETRY_MS, 0);
  if (sv->failing) return;
  sv->failing = 1;
  lua_pushcfunction(L, report_p);
  lua_pushlightuserdata(L, sv);
  lua_pushinteger(L, err);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);  /* out of memory */
}

static void on_readable(uv_poll_t *h, int status, int events) {
  cr_server *sv = (cr_server *)h->data;
  lua_State *L;
  int i;
  (void)events;
  if (sv == NULL) return;
  if (status < 0) {
    accept_failed(sv, status);
    return;
  }
  L = sv->loop->L;
  for (i = 0; i < ACCEPT_BATCH && sv->poll != NULL; i++) {
    int fd = accept4(sv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        accept_failed(sv, uv_translate_sys_error(errno));
      return;
    }
    sv->failing = 0;
    lua_pushcfunction(L, accept_p);
    lua_pushlightuserdata(L, sv);
    lua_pushinteger(L, fd);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);  /* out of memory */
  }
}

static cr_server *checkserver(lua_State *L) {
  return (cr_server *)luaL_checkudata(L, 1, CR_SERVER_MT);
}

/* Close the socket and its handles. uv_close stops the poll at once, so
** the socket can be closed now: a client connecting next is refused. */
static void server_release(cr_server *sv) {
  if (sv->poll != NULL) {
    sv->poll->data = NULL;
    uv_close((uv_handle_t *)sv->poll, on_close_free);
    sv->poll = NULL;
  }
  if (sv->fd >= 0) close(sv->fd);
  sv->fd = -1;
  if (sv->retry != NULL) {
    sv->retry->data = NULL;
    uv_close((uv_handle_t *)sv->retry, on_close_free);
    sv->retry = NULL;
  }
}

static void server_stop(lua_State *L, cr_server *sv) {
  server_release(sv);
  if (sv->ref != LUA_NOREF) {
    cr_loop_unanchor(L, sv->loop, CR_LUV_HANDLES, sv->ref);
    sv->ref = LUA_NOREF;
  }
}

/* server:close([opts]): stop accepting; with {cancel = true} also cancel
** the handlers still running. */
static int server_close(lua_State *L) {
  cr_server *sv = checkserver(L);
  int cancel = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "cancel");
    cancel = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  server_stop(L, sv);
  if (cancel) {
    lua_getiuservalue(L, 1, 2);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      cr_task *t = cr_testobj(L, -2, cr_task, CR_TASK_MAGIC);
      lua_pop(L, 1);
      if (t != NULL) cr_task_cancel(L, t, 0);
    }
    lua_pop(L, 1);
  }
  return 0;
}

static int server_index(lua_State *L) {
  cr_server *sv = checkserver(L);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "port") == 0) lua_pushinteger(L, sv->port);
  else if (strcmp(k, "host") == 0) lua_pushstring(L, sv->host);
  else if (strcmp(k, "close") == 0) lua_pushcfunction(L, server_close);
  else lua_pushnil(L);
  return 1;
}

static int server_gc(lua_State *L) {
  server_release((cr_server *)lua_touserdata(L, 1));
  return 0;
}

/* A socket bound to 'addr' and listening: the fd, or a libuv error. */
static int listen_socket(const struct sockaddr *addr, int backlog) {
  socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
  int on = 1, fd = socket(addr->sa_family,
                          SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (bind(fd, addr, len) != 0 || listen(fd, backlog) != 0) {
    int err = uv_translate_sys_error(errno);
    close(fd);
    return err;
  }
  return fd;
}

static int listen_backlog(lua_State *L) {
  int backlog = 511;
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "backlog");
    backlog = (int)luaL_optinteger(L, -1, 511);
    lua_pop(L, 1);
  }
  return backlog;
}

/* Bind the server (at the top) to 'addr', listen and watch the socket:
** 1 result pushed (the server, or nil, err). */
static int listen_on(lua_State *L, cr_server *sv, const struct sockaddr *addr,
                     int backlog) {
  cr_loop *lp = sv->loop;
  struct sockaddr_storage name;
  socklen_t namelen = sizeof name;
  int r = listen_socket(addr, backlog);
  if (r < 0) return cr_pusherror(L, r);
  sv->fd = r;
  if (getsockname(sv->fd, (struct sockaddr *)&name, &namelen) != 0) {
    r = uv_translate_sys_error(errno);
    server_release(sv);
    return cr_pusherror(L, r);
  }
  sv->poll = (uv_poll_t *)malloc(sizeof *sv->poll);
  sv->retry = (uv_timer_t *)malloc(sizeof *sv->retry);
  if (sv->poll == NULL || sv->retry == NULL) {
    free(sv->poll);
    free(sv->retry);
    sv->poll = NULL;
    sv->retry = NULL;
    server_release(sv);
    return luaL_error(L, "listen: not enough memory");
  }
  uv_timer_init(&lp->uv, sv->retry);
  sv->retry->data = sv;
  if ((r = uv_poll_init_socket(&lp->uv, sv->poll, sv->fd)) != 0) {
    free(sv->poll);
    sv->poll = NULL;
    server_release(sv);
    return cr_pusherror(L, r);
  }
  sv->poll->data = sv;
  uv_poll_start(sv->poll, UV_READABLE, on_readable);
  sv->port = ntohs(name.ss_family == AF_INET6
                   ? ((struct sockaddr_in6 *)&name)->sin6_port
                   : ((struct sockaddr_in *)&name)->sin_port);
  if (name.ss_family == AF_INET6)
    uv_ip6_name((struct sockaddr_in6 *)&name, sv->host, sizeof sv->host);
  else
    uv_ip4_name((struct sockaddr_in *)&name, sv->host, sizeof sv->host);
  sv->ref = cr_loop_anchor(L, lp, CR_LUV_HANDLES, -1);
  return 1;
}

/* The name was resolved on the thread pool (the frame is [host, port,
** handler, opts, server]). */
static int listen_k(lua_State *L, int status, lua_KContext ctx) {
  int err, r;
  struct addrinfo *res = cr_dns_result(L, ctx, &err);
  (void)status;
  if (res == NULL) return cr_pusherror(L, err);
  lua_settop(L, 5);
  r = listen_on(L, (cr_server *)lua_touserdata(L, 5), res->ai_addr,
                listen_backlog(L));
  uv_freeaddrinfo(res);
  return r;
}

/* tcp.listen(host, port, handler, [opts]) -> server | nil, err. A numeric
** address binds at once; a name is resolved on the thread pool while the
** calling task waits (outside a task, synchronously: nothing else runs). */
static int tcp_listen(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  int backlog, r;
  struct addrinfo hints;
  struct sockaddr_storage ss;
  cr_server *sv;
  uv_getaddrinfo_t req;
  char service[16];
  if (port < 0 || port >= 65536)
    cr_argerror(L, 2, "listen", "port must be 0..65535");
  if (!lua_isfunction(L, 3)) cr_argerror(L, 3, "listen", "function expected");
  backlog = listen_backlog(L);
  lua_settop(L, 4);
  sv = (cr_server *)lua_newuserdatauv(L, sizeof *sv, 3);
  memset(sv, 0, sizeof *sv);
  sv->fd = -1;
  sv->ref = LUA_NOREF;
  sv->loop = lp;
  luaL_setmetatable(L, CR_SERVER_MT);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, 1);
  lua_createtable(L, 0, 0);  /* the handlers' tasks: weak keys */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, 2);
  if (lua_istable(L, 4)) {
    if (lua_getfield(L, 4, "on_error") != LUA_TNIL &&
        !lua_isfunction(L, -1) && !luaL_getmetafield(L, -1, "__call"))
      cr_argerror(L, 4, "listen", "on_error must be a function");
    lua_settop(L, 6);
    lua_setiuservalue(L, 5, 3);  /* sv (5) is on top again */
  }
  if (cr_dns_numeric(host, (int)port, &ss) == 0)
    return listen_on(L, sv, (struct sockaddr *)&ss, backlog);
  snprintf(service, sizeof service, "%d", (int)port);
  if (lp->current != NULL && lp->current->co == L && lua_isyieldable(L))
    return cr_dns_getaddrinfo(L, lp, "listen", host, service, AF_UNSPEC,
                              SOCK_STREAM, AI_PASSIVE, -1, listen_k);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  r = uv_getaddrinfo(&lp->uv, &req, NULL, host, service, &hints);
  if (r != 0) return cr_pusherror(L, r);
  r = listen_on(L, sv, req.addrinfo->ai_addr, backlog);
  uv_freeaddrinfo(req.addrinfo);
  return r;
}

/* {=================================================================
** Standard streams: core.stdio(fd) over fd 0, 1 or 2 when it is a tty or
** a pipe; false when it is a regular file (which never blocks for long).
** ================================================================== */

static int stream_stdio(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  lua_Integer fd = luaL_checkinteger(L, 1);
  uv_handle_type type;
  uv_stream_t *h;
  int r;
  luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "fd must be 0, 1 or 2");
  type = uv_guess_handle((int)fd);
  if (type == UV_TTY) {
    uv_tty_t *tty = (uv_tty_t *)malloc(sizeof *tty);
    if (tty == NULL) return luaL_error(L, "not enough memory");
    if ((r = uv_tty_init(&lp->uv, tty, (int)fd, 0)) != 0) {
      free(tty);
      return cr_pusherror(L, r);
    }
    h = (uv_stream_t *)tty;
  }
  else if (type == UV_NAMED_PIPE || type == UV_TCP) {
    uv_pipe_t *p = (uv_pipe_t *)malloc(sizeof *p);
    if (p == NULL) return luaL_error(L, "not enough memory");
    uv_pipe_init(&lp->uv, p, 0);
    if ((r = uv_pipe_open(p, (int)fd)) != 0) {
      uv_close((uv_handle_t *)p, on_close_free);
      return cr_pusherror(L, r);
    }
    h = (uv_stream_t *)p;
  }
  else if (type == UV_FILE) {
    lua_pushboolean(L, 0);  /* the Lua layer reads and writes it with io */
    return 1;
  }
  else {
    lua_pushnil(L);
    lua_pushfstring(L, "EBADF: fd %d is not a terminal, a pipe or a file",
                    (int)fd);
    return 2;
  }
  cr_stream_push(L, lp, h);
  return 1;
}

/* }================================================================= */

void cr_stream_open_lib(lua_State *L) {
  static const luaL_Reg tcp[] = {
    {"connect", tcp_connect},
    {"listen", tcp_listen},
    {NULL, NULL}
  };
  static const luaL_Reg meta[] = {
    {"__tostring", stream_tostring}, {"__gc", stream_gc},
    {"__close", stream_close}, {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"read", stream_read}, {"write", stream_write}, {"close", stream_close},
    {"read_until", stream_read_until}, {"peername", stream_peername},
    {"_ref", stream_ref}, {NULL, NULL}
  };
  static const luaL_Reg svmeta[] = {
    {"__index", server_index}, {"__gc", server_gc}, {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  lua_newtable(L);
  cr_setfuncs(L, tcp, loopidx);
  lua_setfield(L, -2, "tcp");
  lua_pushvalue(L, loopidx);
  lua_pushcclosure(L, stream_stdio, 1);
  lua_setfield(L, -2, "stdio");
  cr_newclass(L, CR_STREAM_MT, meta, methods, loopidx);
  luaL_newmetatable(L, CR_SERVER_MT);
  cr_setfuncs(L, svmeta, loopidx);
  lua_pop(L, 1);
}
