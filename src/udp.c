/*
** udp.c
** corun.udp: UDP sockets over uv_udp_t. corun.udp.open([family]) makes an
** unbound socket, corun.udp.bind(host, port, [opts]) a bound one;
** sock:send(data, host, port), sock:recv([timeout]) -> data, host, port,
** connected mode, multicast membership, broadcast and buffer sizes.
**
** A socket userdata owns a malloc'd uv_udp_t (freed in its close
** callback) whose 'data' points back at the socket until it is closed or
** collected, and a receive buffer libuv reads into. Once the socket is
** bound (bind, connect, or its first send) it receives datagrams into a
** queue of at most QUEUE_MAX; while the queue is full it stops reading,
** so the kernel's buffer (rcvbuf) holds or drops what comes next. The
** handle keeps the loop alive only while a task waits in recv. A send goes
** out at once (uv_udp_try_send); if the kernel's buffer is full it is
** copied and queued (uv_udp_send), and an error then is not reported.
** Host names are resolved on the thread pool (dns.c) while the task waits.
** Failures are nil, "ENAME: message", "ENAME"; misuse raises.
*/

#include <stdlib.h>
#include <string.h>

#include "corun.h"

#define CR_UDP_MT    "corun.udp"
#define CR_UDP_MAGIC 0x7a5c0030u
#define QUEUE_MAX    128          /* datagrams held for recv */
#define RECV_BUF     (64 * 1024)  /* larger than any UDP datagram */

typedef struct dgram {
  cr_list node;               /* in the socket's queue */
  size_t len;
  int port;
  char host[INET6_ADDRSTRLEN];
  char data[1];
} dgram;

typedef struct cr_udp {
  cr_loop *loop;
  uv_udp_t *h;                /* owned: freed in its close callback */
  char *rbuf;                 /* owned: what libuv receives into */
  cr_list queue;              /* owned dgrams, oldest first */
  int nqueued;
  int err;                    /* a receive error for the next recv, or 0 */
  int reading;                /* uv_udp_recv_start is active */
  int refd;                   /* the handle is referenced */
  int closed;
  int connected;
  cr_list readers;            /* tasks parked in recv */
  unsigned magic;
} cr_udp;

static cr_udp *checkudp(lua_State *L, const char *fname) {
  cr_udp *s = cr_testobj(L, 1, cr_udp, CR_UDP_MAGIC);
  if (s == NULL)
    luaL_error(L, "bad argument #1 to '%s' (corun.udp expected, got %s)",
               fname, luaL_typename(L, 1));
  return s;
}

static int pushclosed(lua_State *L) {
  return cr_pushfail(L, "closed");
}

static void on_close_free(uv_handle_t *h) {
  free(h);
}

/* Reference the handle only while somebody waits in recv ('want'). */
static void refto(cr_udp *s, int want) {
  if (s->h == NULL || want == s->refd) return;
  if (want) uv_ref((uv_handle_t *)s->h);
  else uv_unref((uv_handle_t *)s->h);
  s->refd = want;
}

static void setref(cr_udp *s) {
  refto(s, !cr_list_empty(&s->readers));
}

/* {=================================================================
** Receiving
** ================================================================== */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  cr_udp *s = (cr_udp *)h->data;
  (void)hint;
  b->base = s != NULL ? s->rbuf : NULL;
  b->len = s != NULL ? RECV_BUF : 0;
}

static void stopreading(cr_udp *s) {
  if (s->reading) {
    uv_udp_recv_stop(s->h);
    s->reading = 0;
  }
}

static void wakereader(cr_udp *s) {
  cr_wait_wakeone(&s->readers, CR_OK);
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b,
                    const struct sockaddr *addr, unsigned flags) {
  cr_udp *s = (cr_udp *)h->data;
  dgram *d;
  (void)flags;
  if (s == NULL || (n == 0 && addr == NULL)) return;  /* nothing read */
  if (n < 0) {
    s->err = (int)n;
    wakereader(s);
    return;
  }
  d = (dgram *)malloc(sizeof *d + (size_t)n);
  if (d == NULL) return;  /* dropped, as the kernel would */
  memcpy(d->data, b->base, (size_t)n);
  d->len = (size_t)n;
  d->host[0] = '\0';
  d->port = 0;
  if (addr->sa_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)addr, d->host, sizeof d->host);
    d->port = ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
  }
  else if (addr->sa_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)addr, d->host, sizeof d->host);
    d->port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
  }
  cr_list_push(&s->queue, &d->node);
  if (++s->nqueued >= QUEUE_MAX) stopreading(s);
  wakereader(s);
}

static int startreading(cr_udp *s) {
  int r = 0;
  if (!s->reading && s->h != NULL && s->nqueued < QUEUE_MAX) {
    r = uv_udp_recv_start(s->h, on_alloc, on_recv);
    if (r == 0) s->reading = 1;
  }
  return r;
}

/* Pop the oldest datagram: data, host, port. */
static int popdgram(lua_State *L, cr_udp *s) {
  dgram *d = cr_container_of(cr_list_shift(&s->queue), dgram, node);
  s->nqueued--;
  lua_pushlstring(L, d->data, d->len);
  lua_pushstring(L, d->host);
  lua_pushinteger(L, d->port);
  free(d);
  startreading(s);
  return 3;
}

static int recv_(lua_State *L, cr_udp *s);

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  cr_udp *s = (cr_udp *)lua_touserdata(L, 1);
  int outcome;
  (void)status; (void)ctx;
  setref(s);
  outcome = cr_task_outcome(L, s->loop->current);  /* may raise Cancelled */
  if (outcome == CR_TIMEOUT && cr_list_empty(&s->queue))
    return cr_pushfail(L, "timeout");
  return recv_(L, s);
}

/* The frame is [sock, deadline] (deadline < 0: none). */
static int recv_(lua_State *L, cr_udp *s) {
  double deadline = lua_tonumber(L, 2), timeout = -1;
  cr_task *t;
  int r;
  if (!cr_list_empty(&s->queue)) return popdgram(L, s);
  if (s->closed) return pushclosed(L);
  if (s->err != 0) {
    r = s->err;
    s->err = 0;
    return cr_dns_pusherror(L, r);
  }
  t = cr_task_enter(L, s->loop, "recv");
  if ((r = startreading(s)) != 0) return cr_dns_pusherror(L, r);
  if (deadline >= 0) {
    timeout = deadline - cr_loop_now(s->loop);
    if (timeout < 0) timeout = 0;
  }
  cr_task_checkcancel(L, t);
  refto(s, 1);  /* it is about to wait */
  return cr_wait_on(L, t, &s->readers, timeout, 0, recv_k);
}

/* sock:recv([timeout]) -> data, host, port | nil, "timeout" | nil, "closed" */
static int udp_recv(lua_State *L) {
  cr_udp *s = checkudp(L, "recv");
  double timeout = cr_opttimeout(L, 2);
  lua_settop(L, 1);
  lua_pushnumber(L, timeout < 0 ? -1 : cr_loop_now(s->loop) + timeout);
  return recv_(L, s);
}

/* }================================================================= */


/* {=================================================================
** Addresses: a numeric address at once, a name through dns.c
** ================================================================== */

typedef int (*withaddr_fn)(lua_State *L, cr_udp *s,
                           const struct sockaddr *sa);

static int checkport(lua_State *L, int arg, const char *fname, int min) {
  lua_Integer p;
  if (!lua_isinteger(L, arg))
    luaL_error(L, "bad argument #%d to '%s' (port expected, got %s)", arg,
               fname, luaL_typename(L, arg));
  p = lua_tointeger(L, arg);
  if (p < min || p > 65535)
    luaL_error(L, "bad argument #%d to '%s' (port must be %d..65535)", arg,
               fname, min);
  return (int)p;
}

/* The socket's address family (AF_UNSPEC if unknown). */
static int family(cr_udp *s) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (s->h == NULL || uv_udp_getsockname(s->h, (struct sockaddr *)&ss, &len))
    return AF_UNSPEC;
  return ss.ss_family;
}

/* Call fn with the address host:port (arguments harg, harg + 1 of the
** caller), resolving a name first (in a task: parked; outside a task:
** synchronously). The frame must stay as it is: the continuation finds
** fn through 'ctx' and the socket at 1. */
static int withaddr(lua_State *L, cr_udp *s, const char *fname, int harg,
                    int minport, withaddr_fn fn, lua_KFunction k) {
  const char *host = cr_dns_checkstring(L, harg, fname);
  int port = checkport(L, harg + 1, fname, minport), r;
  struct sockaddr_storage ss;
  char service[16];
  if (cr_dns_numeric(host, port, &ss) == 0)
    return fn(L, s, (struct sockaddr *)&ss);
  snprintf(service, sizeof service, "%d", port);
  if (s->loop->current != NULL && s->loop->current->co == L &&
      lua_isyieldable(L))
    return cr_dns_getaddrinfo(L, s->loop, fname, host, service, family(s),
                              SOCK_DGRAM, 0, -1, k);
  else {
    uv_getaddrinfo_t req;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family(s);
    hints.ai_socktype = SOCK_DGRAM;
    r = uv_getaddrinfo(&s->loop->uv, &req, NULL, host, service, &hints);
    if (r != 0) return cr_dns_pusherror(L, r);
    r = fn(L, s, req.addrinfo->ai_addr);
    uv_freeaddrinfo(req.addrinfo);
    return r;
  }
}

static int resolved(lua_State *L, lua_KContext ctx, withaddr_fn fn) {
  int err, r;
  struct addrinfo *res = cr_dns_result(L, ctx, &err);
  cr_udp *s = (cr_udp *)lua_touserdata(L, 1);
  if (err == UV_ETIMEDOUT) return cr_pushfail(L, "timeout");
  if (res == NULL) return cr_dns_pusherror(L, err);
  if (s->closed) r = pushclosed(L);
  else r = fn(L, s, res->ai_addr);
  uv_freeaddrinfo(res);
  return r;
}

/* }================================================================= */


/* {=================================================================
** Sending, binding, connecting
** ================================================================== */

typedef struct sreq {
  uv_udp_send_t req;
  char data[1];
} sreq;

static void on_send(uv_udp_send_t *req, int status) {
  (void)status;  /* a queued datagram's fate is not reported */
  free(req);
}

/* Send the data at 2 to 'sa' (NULL: the connected peer). */
static int sendto_(lua_State *L, cr_udp *s, const struct sockaddr *sa) {
  size_t len;
  const char *data = lua_tolstring(L, 2, &len);
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int r = uv_udp_try_send(s->h, &b, 1, sa);
  if (r == UV_EAGAIN || r == UV_ENOSYS) {
    sreq *q = (sreq *)malloc(sizeof *q + len);
    if (q == NULL) return luaL_error(L, "send: not enough memory");
    memcpy(q->data, data, len);
    b = uv_buf_init(q->data, (unsigned)len);
    r = uv_udp_send(&q->req, s->h, &b, 1, sa, on_send);
    if (r != 0) free(q);
  }
  else if (r >= 0)
    r = 0;
  if (r != 0) return cr_dns_pusherror(L, r);
  startreading(s);  /* now bound: replies are queued */
  lua_pushboolean(L, 1);
  return 1;
}

static int send_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return resolved(L, ctx, sendto_);
}

/* sock:send(data, [host, port]) -> true | nil, err, code (host and port
** only when the socket is not connected). */
static int udp_send(lua_State *L) {
  cr_udp *s = checkudp(L, "send");
  if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
    luaL_error(L, "bad argument #2 to 'send' (string expected, got %s)",
               luaL_typename(L, 2));
  lua_tostring(L, 2);
  lua_settop(L, 4);
  if (s->closed) return pushclosed(L);
  if (s->connected) {
    if (!lua_isnil(L, 3))
      luaL_error(L, "bad argument #3 to 'send' (the socket is connected: "
                    "no address)");
    return sendto_(L, s, NULL);
  }
  if (lua_isnil(L, 3))
    luaL_error(L, "bad argument #3 to 'send' (host expected: the socket "
                  "is not connected)");
  return withaddr(L, s, "send", 3, 1, sendto_, send_k);
}

static int bind_(lua_State *L, cr_udp *s, const struct sockaddr *sa) {
  unsigned flags = 0;
  int r;
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "reuseaddr");
    if (lua_toboolean(L, -1)) flags |= UV_UDP_REUSEADDR;
    lua_getfield(L, 4, "ipv6only");
    if (lua_toboolean(L, -1)) flags |= UV_UDP_IPV6ONLY;
    lua_pop(L, 2);
  }
  if ((r = uv_udp_bind(s->h, sa, flags)) == 0) r = startreading(s);
  if (r != 0) return cr_dns_pusherror(L, r);
  lua_settop(L, 1);
  return 1;
}

static int bind_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return resolved(L, ctx, bind_);
}

/* sock:bind(host, port, [opts]) -> sock | nil, err, code (opts.reuseaddr,
** opts.ipv6only) */
static int udp_bindm(lua_State *L) {
  cr_udp *s = checkudp(L, "bind");
  lua_settop(L, 4);
  if (s->closed) return pushclosed(L);
  return withaddr(L, s, "bind", 2, 0, bind_, bind_k);
}

static int connect_(lua_State *L, cr_udp *s, const struct sockaddr *sa) {
  int r = uv_udp_connect(s->h, sa);
  if (r == UV_EISCONN) {  /* connected elsewhere: move */
    uv_udp_connect(s->h, NULL);
    r = uv_udp_connect(s->h, sa);
  }
  if (r == 0) r = startreading(s);
  if (r != 0) return cr_dns_pusherror(L, r);
  s->connected = 1;
  lua_pushboolean(L, 1);
  return 1;
}

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return resolved(L, ctx, connect_);
}

/* sock:connect(host, port) -> true | nil, err, code; sock:connect()
** disconnects. */
static int udp_connect(lua_State *L) {
  cr_udp *s = checkudp(L, "connect");
  lua_settop(L, 3);
  if (s->closed) return pushclosed(L);
  if (lua_isnil(L, 2)) {
    if (s->connected) uv_udp_connect(s->h, NULL);
    s->connected = 0;
    lua_pushboolean(L, 1);
    return 1;
  }
  return withaddr(L, s, "connect", 2, 1, connect_, connect_k);
}

/* }================================================================= */


/* {=================================================================
** Names, options, multicast
** ================================================================== */

static int pushname(lua_State *L, int peer) {
  cr_udp *s = checkudp(L, peer ? "getpeername" : "getsockname");
  struct sockaddr_storage ss;
  int len = sizeof ss, port, r;
  if (s->closed) return pushclosed(L);
  r = peer ? uv_udp_getpeername(s->h, (struct sockaddr *)&ss, &len)
           : uv_udp_getsockname(s->h, (struct sockaddr *)&ss, &len);
  if (r != 0) return cr_dns_pusherror(L, r);
  cr_dns_pushaddr(L, (struct sockaddr *)&ss, &port);
  lua_pushinteger(L, port);
  return 2;
}

static int udp_getsockname(lua_State *L) { return pushname(L, 0); }
static int udp_getpeername(lua_State *L) { return pushname(L, 1); }

static int membership(lua_State *L, const char *fname, uv_membership m) {
  cr_udp *s = checkudp(L, fname);
  const char *group = cr_dns_checkstring(L, 2, fname);
  const char *iface = lua_isnoneornil(L, 3) ? NULL
                      : cr_dns_checkstring(L, 3, fname);
  int r;
  if (s->closed) return pushclosed(L);
  if ((r = uv_udp_set_membership(s->h, group, iface, m)) != 0)
    return cr_dns_pusherror(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

/* sock:join(group, [iface]), sock:leave(group, [iface]) -> true | nil, err */
static int udp_join(lua_State *L) {
  return membership(L, "join", UV_JOIN_GROUP);
}

static int udp_leave(lua_State *L) {
  return membership(L, "leave", UV_LEAVE_GROUP);
}

static const char *const optnames[] = {
  "broadcast", "ttl", "multicast_ttl", "multicast_loop",
  "multicast_interface", "sndbuf", "rcvbuf", NULL
};

static int intval(lua_State *L, int arg, const char *name) {
  if (lua_isboolean(L, arg)) return lua_toboolean(L, arg);
  if (!lua_isinteger(L, arg))
    luaL_error(L, "bad argument #%d to 'setoption' (%s: integer or boolean "
                  "expected, got %s)", arg, name, luaL_typename(L, arg));
  return (int)lua_tointeger(L, arg);
}

static int optindex(lua_State *L, const char *fname) {
  const char *name = cr_dns_checkstring(L, 2, fname);
  int i;
  for (i = 0; optnames[i] != NULL; i++)
    if (strcmp(optnames[i], name) == 0) return i;
  return luaL_error(L, "bad argument #2 to '%s' (unknown option '%s')",
                    fname, name);
}

/* sock:setoption(name, value) -> true | nil, err, code */
static int udp_setoption(lua_State *L) {
  cr_udp *s = checkudp(L, "setoption");
  int opt = optindex(L, "setoption"), r, v = 0;
  if (opt != 4) v = intval(L, 3, optnames[opt]);
  if (s->closed) return pushclosed(L);
  switch (opt) {
    case 0: r = uv_udp_set_broadcast(s->h, v); break;
    case 1: r = uv_udp_set_ttl(s->h, v); break;
    case 2: r = uv_udp_set_multicast_ttl(s->h, v); break;
    case 3: r = uv_udp_set_multicast_loop(s->h, v); break;
    case 4:
      r = uv_udp_set_multicast_interface(s->h,
            cr_dns_checkstring(L, 3, "setoption"));
      break;
    default:
      if (v <= 0)
        luaL_error(L, "bad argument #3 to 'setoption' (size must be > 0)");
      r = opt == 5 ? uv_send_buffer_size((uv_handle_t *)s->h, &v)
                   : uv_recv_buffer_size((uv_handle_t *)s->h, &v);
  }
  if (r != 0) return cr_dns_pusherror(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

/* sock:getoption("sndbuf" | "rcvbuf") -> size (what the kernel keeps) */
static int udp_getoption(lua_State *L) {
  cr_udp *s = checkudp(L, "getoption");
  int opt = optindex(L, "getoption"), v = 0, r;
  if (opt != 5 && opt != 6)
    luaL_error(L, "bad argument #2 to 'getoption' (only \"sndbuf\" and "
                  "\"rcvbuf\" can be read)");
  if (s->closed) return pushclosed(L);
  r = opt == 5 ? uv_send_buffer_size((uv_handle_t *)s->h, &v)
               : uv_recv_buffer_size((uv_handle_t *)s->h, &v);
  if (r != 0) return cr_dns_pusherror(L, r);
  lua_pushinteger(L, v);
  return 1;
}

/* sock:fileno() -> the socket's descriptor, or nil when closed */
static int udp_fileno(lua_State *L) {
  cr_udp *s = checkudp(L, "fileno");
  uv_os_fd_t fd;
  if (s->closed || uv_fileno((uv_handle_t *)s->h, &fd) != 0) return 0;
  lua_pushinteger(L, (lua_Integer)fd);
  return 1;
}

/* }================================================================= */


/* {=================================================================
** Life cycle
** ================================================================== */

static void release(cr_udp *s) {
  cr_list *n;
  if (s->h != NULL) {
    stopreading(s);
    s->h->data = NULL;
    uv_close((uv_handle_t *)s->h, on_close_free);
    s->h = NULL;
  }
  while ((n = cr_list_shift(&s->queue)) != NULL)
    free(cr_container_of(n, dgram, node));
  s->nqueued = 0;
  free(s->rbuf);
  s->rbuf = NULL;
}

static int udp_close(lua_State *L) {
  cr_udp *s = checkudp(L, "close");
  if (!s->closed) {
    s->closed = 1;
    release(s);
    cr_wait_wakeall(&s->readers, CR_CLOSED);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int udp_gc(lua_State *L) {
  cr_udp *s = (cr_udp *)lua_touserdata(L, 1);
  if (s->magic == CR_UDP_MAGIC) release(s);
  return 0;
}

static int udp_tostring(lua_State *L) {
  cr_udp *s = checkudp(L, "tostring");
  lua_pushfstring(L, "corun.udp (%s): %p", s->closed ? "closed" : "open",
                  (void *)s);
  return 1;
}

/* A new open socket of address family 'af' on the stack. */
static cr_udp *newudp(lua_State *L, cr_loop *lp, int af) {
  cr_udp *s = (cr_udp *)lua_newuserdatauv(L, sizeof *s, 0);
  int r;
  memset(s, 0, sizeof *s);
  s->closed = 1;  /* closed-first */
  s->loop = lp;
  cr_list_init(&s->queue);
  cr_list_init(&s->readers);
  s->magic = CR_UDP_MAGIC;
  luaL_setmetatable(L, CR_UDP_MT);
  s->rbuf = (char *)malloc(RECV_BUF);
  s->h = (uv_udp_t *)malloc(sizeof *s->h);
  if (s->rbuf == NULL || s->h == NULL) {
    free(s->h);
    s->h = NULL;
    luaL_error(L, "udp: not enough memory");
  }
  if ((r = uv_udp_init_ex(&lp->uv, s->h, (unsigned)af)) != 0) {
    free(s->h);
    s->h = NULL;
    luaL_error(L, "udp: %s: %s", uv_err_name(r), uv_strerror(r));
  }
  s->h->data = s;
  uv_unref((uv_handle_t *)s->h);
  s->closed = 0;
  return s;
}

static int checkfamily(lua_State *L, int arg, const char *fname) {
  const char *f = lua_isnoneornil(L, arg) ? "inet"
                  : cr_dns_checkstring(L, arg, fname);
  if (strcmp(f, "inet") == 0) return AF_INET;
  if (strcmp(f, "inet6") == 0) return AF_INET6;
  return luaL_error(L, "bad argument #%d to '%s' (family must be \"inet\" "
                       "or \"inet6\")", arg, fname);
}

/* udp.open([family]) -> sock (family "inet", the default, or "inet6") */
static int udp_open(lua_State *L) {
  newudp(L, cr_loop_get(L), checkfamily(L, 1, "open"));
  return 1;
}

static int open_bind_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return resolved(L, ctx, bind_);
}

/* udp.bind(host, port, [opts]) -> sock | nil, err, code: a socket of the
** address's family bound to it. */
static int udp_bind(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  const char *host = cr_dns_checkstring(L, 1, "bind");
  struct sockaddr_storage ss;
  int af = AF_INET;
  checkport(L, 2, "bind", 0);
  if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
    luaL_error(L, "bad argument #3 to 'bind' (table expected, got %s)",
               luaL_typename(L, 3));
  if (cr_dns_numeric(host, 0, &ss) == 0) af = ss.ss_family;
  lua_settop(L, 3);
  newudp(L, lp, af);     /* [host, port, opts, sock] */
  lua_insert(L, 1);      /* [sock, host, port, opts] */
  return withaddr(L, (cr_udp *)lua_touserdata(L, 1), "bind", 2, 0, bind_,
                  open_bind_k);
}

/* }================================================================= */

void cr_udp_open_lib(lua_State *L) {
  static const luaL_Reg udp[] = {
    {"open", udp_open}, {"bind", udp_bind}, {NULL, NULL}
  };
  static const luaL_Reg meta[] = {
    {"__gc", udp_gc}, {"__close", udp_close}, {"__tostring", udp_tostring},
    {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"send", udp_send}, {"recv", udp_recv}, {"bind", udp_bindm},
    {"connect", udp_connect}, {"getsockname", udp_getsockname},
    {"getpeername", udp_getpeername}, {"join", udp_join},
    {"leave", udp_leave}, {"setoption", udp_setoption},
    {"getoption", udp_getoption}, {"fileno", udp_fileno},
    {"close", udp_close}, {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  lua_newtable(L);
  cr_setfuncs(L, udp, loopidx);
  lua_setfield(L, -2, "udp");
  cr_newclass(L, CR_UDP_MT, meta, methods, loopidx);
}
