/*
** dns.c
** corun.dns: resolve (getaddrinfo) and reverse (getnameinfo) on libuv's
** thread pool, and the resolving step other files share (tcp.listen,
** corun.udp): cr_dns_getaddrinfo parks the calling task until the answer
** comes, cr_dns_result hands it to the caller's continuation.
**
** Ownership: a request (dnsop) is malloc'd and belongs to libuv while it
** is in flight; its callback runs exactly once (also after uv_cancel, with
** UV_EAI_CANCELED). When the task stops waiting first (timeout or
** cancellation), its continuation marks the request abandoned and asks
** libuv to cancel it; the callback then frees it (and any answer). Else
** the callback wakes the task and the continuation frees the request.
** Failures are returned as nil, "EAI_NONAME: unknown node or service",
** "EAI_NONAME"; a timeout as nil, "timeout"; misuse raises.
*/

#include <stdlib.h>
#include <string.h>

#include "corun.h"

typedef struct dnsop {
  union {
    uv_getaddrinfo_t gai;
    uv_getnameinfo_t gni;
  } req;
  cr_loop *loop;
  cr_list waiters;            /* the resolving task while it waits */
  struct addrinfo *res;       /* owned: the answer, until taken */
  int status;                 /* libuv result once done */
  int done;                   /* the callback has run */
  int abandoned;              /* nobody waits: the callback frees the op */
  char host[NI_MAXHOST];      /* getnameinfo's answer */
} dnsop;

/* Push nil, "ENAME: message", "ENAME" for libuv error 'e'; returns 3. */
int cr_dns_pusherror(lua_State *L, int e) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(e), uv_strerror(e));
  lua_pushstring(L, uv_err_name(e));
  return 3;
}

static void opdone(dnsop *op, int status) {
  op->status = status;
  op->done = 1;
  if (op->abandoned) {
    if (op->res != NULL) uv_freeaddrinfo(op->res);
    free(op);
    return;
  }
  cr_wait_wakeone(&op->waiters, CR_OK);
}

static void on_addrinfo(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  dnsop *op = cr_container_of(req, dnsop, req.gai);
  op->res = res;
  opdone(op, status);
}

static void on_nameinfo(uv_getnameinfo_t *req, int status,
                        const char *host, const char *service) {
  dnsop *op = cr_container_of(req, dnsop, req.gni);
  (void)service;
  if (status == 0 && host != NULL) {
    strncpy(op->host, host, sizeof op->host - 1);
    op->host[sizeof op->host - 1] = '\0';
  }
  opdone(op, status);
}

static dnsop *newop(lua_State *L, cr_loop *lp) {
  dnsop *op = (dnsop *)calloc(1, sizeof *op);
  if (op == NULL) luaL_error(L, "not enough memory");
  op->loop = lp;
  cr_list_init(&op->waiters);
  return op;
}

/* Start resolving host/service for the running task (in 'fname') and
** park it; continuation k gets the request as its context and must call
** cr_dns_result. family: AF_UNSPEC, AF_INET or AF_INET6; socktype 0 for
** any; timeout < 0 for none. */
int cr_dns_getaddrinfo(lua_State *L, cr_loop *lp, const char *fname,
                       const char *host, const char *service, int family,
                       int socktype, int flags, double timeout,
                       lua_KFunction k) {
  cr_task *me = cr_task_enter(L, lp, fname);
  struct addrinfo hints;
  dnsop *op;
  int r;
  cr_task_checkcancel(L, me);
  op = newop(L, lp);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = socktype;
  hints.ai_flags = flags;
  r = uv_getaddrinfo(&lp->uv, &op->req.gai, on_addrinfo, host, service,
                     &hints);
  if (r != 0) {
    free(op);
    return cr_dns_pusherror(L, r);
  }
  return cr_wait_on(L, me, &op->waiters, timeout, (lua_KContext)op, k);
}

/* In the continuation: settle the request. Raises Cancelled if the task
** was cancelled (the request is freed, or abandoned to its callback).
** Returns 0 when the task timed out first (the request is abandoned: do
** not touch it), else 1 (done: op->status and op->res hold the answer). */
static int take(lua_State *L, dnsop *op) {
  cr_task *me = op->loop->current;
  if (me->outcome == CR_CANCELLED || !op->done) {
    if (op->done) {
      if (op->res != NULL) uv_freeaddrinfo(op->res);
      free(op);
    }
    else {
      op->abandoned = 1;
      uv_cancel((uv_req_t *)&op->req);
    }
    cr_task_outcome(L, me);  /* raises Cancelled */
    return 0;
  }
  return 1;
}

/* The addresses the request 'ctx' found (the caller frees them with
** uv_freeaddrinfo), or NULL with *err set (UV_ETIMEDOUT: timed out). */
struct addrinfo *cr_dns_result(lua_State *L, lua_KContext ctx, int *err) {
  dnsop *op = (dnsop *)ctx;
  struct addrinfo *res;
  if (!take(L, op)) {
    *err = UV_ETIMEDOUT;
    return NULL;
  }
  *err = op->status;
  res = op->res;
  free(op);
  if (*err != 0 && res != NULL) {
    uv_freeaddrinfo(res);
    res = NULL;
  }
  if (*err == 0 && res == NULL) *err = UV_EAI_NONAME;
  return res;
}

/* Push the numeric address of 'sa' (and return its port in *port). */
void cr_dns_pushaddr(lua_State *L, const struct sockaddr *sa, int *port) {
  char buf[INET6_ADDRSTRLEN];
  buf[0] = '\0';
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, buf, sizeof buf);
    if (port) *port = ntohs(a->sin6_port);
  }
  else if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, buf, sizeof buf);
    if (port) *port = ntohs(a->sin_port);
  }
  else if (port)
    *port = 0;
  lua_pushstring(L, buf);
}

/* Parse a numeric IPv4 or IPv6 address with a port into 'ss'; 0 on
** success, else UV_EINVAL (not a numeric address). */
int cr_dns_numeric(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (strchr(host, ':') != NULL &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return UV_EINVAL;
}

/* The string argument 'arg' of 'fname' (luaL_checkstring cannot name
** functions of sub-tables such as corun.dns). */
const char *cr_dns_checkstring(lua_State *L, int arg, const char *fname) {
  const char *s = lua_type(L, arg) == LUA_TSTRING ||
                  lua_type(L, arg) == LUA_TNUMBER ? lua_tostring(L, arg) : NULL;
  if (s == NULL)
    luaL_error(L, "bad argument #%d to '%s' (string expected, got %s)", arg,
               fname, luaL_typename(L, arg));
  return s;
}

static const char *familyname(int f) {
  return f == AF_INET6 ? "inet6" : f == AF_INET ? "inet" : "unspec";
}

static const char *socktypename(int t) {
  return t == SOCK_STREAM ? "stream" : t == SOCK_DGRAM ? "dgram"
         : t == SOCK_RAW ? "raw" : "unknown";
}

/* {=================================================================
** The Lua functions
** ================================================================== */

static int resolve_k(lua_State *L, int status, lua_KContext ctx) {
  int err, i = 0;
  struct addrinfo *res = cr_dns_result(L, ctx, &err), *ai;
  (void)status;
  if (err == UV_ETIMEDOUT) return cr_pushfail(L, "timeout");
  if (err != 0) return cr_dns_pusherror(L, err);
  lua_newtable(L);
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    lua_createtable(L, 0, 4);
    cr_dns_pushaddr(L, ai->ai_addr, NULL);
    lua_setfield(L, -2, "addr");
    lua_pushstring(L, familyname(ai->ai_family));
    lua_setfield(L, -2, "family");
    lua_pushstring(L, socktypename(ai->ai_socktype));
    lua_setfield(L, -2, "socktype");
    if (i == 0 && ai->ai_canonname != NULL) {
      lua_pushstring(L, ai->ai_canonname);
      lua_setfield(L, -2, "canonname");
    }
    lua_rawseti(L, -2, ++i);
  }
  uv_freeaddrinfo(res);
  return 1;
}

/* opts.family ("inet" | "inet6" | nil), opts.socktype ("stream" | "dgram"
** | "any"; default "stream": one entry per address), opts.timeout. */
static void resolveopts(lua_State *L, int arg, int *family, int *socktype,
                        double *timeout) {
  const char *f, *t;
  if (lua_isnoneornil(L, arg)) return;
  if (!lua_istable(L, arg)) cr_argerror(L, arg, "resolve", "table expected");
  lua_getfield(L, arg, "family");
  f = lua_tostring(L, -1);
  if (f != NULL && strcmp(f, "inet") == 0) *family = AF_INET;
  else if (f != NULL && strcmp(f, "inet6") == 0) *family = AF_INET6;
  else if (!lua_isnil(L, -1))
    cr_argerror(L, arg, "resolve", "family must be \"inet\" or \"inet6\"");
  lua_getfield(L, arg, "socktype");
  t = lua_tostring(L, -1);
  if (t != NULL && strcmp(t, "stream") == 0) *socktype = SOCK_STREAM;
  else if (t != NULL && strcmp(t, "dgram") == 0) *socktype = SOCK_DGRAM;
  else if (t != NULL && strcmp(t, "any") == 0) *socktype = 0;
  else if (!lua_isnil(L, -1))
    cr_argerror(L, arg, "resolve",
                "socktype must be \"stream\", \"dgram\" or \"any\"");
  lua_getfield(L, arg, "timeout");
  if (!lua_isnil(L, -1)) {
    *timeout = lua_tonumber(L, -1);
    if (!lua_isnumber(L, -1) || !(*timeout >= 0))
      cr_argerror(L, arg, "resolve", "timeout must be a number >= 0");
  }
  lua_pop(L, 3);
}

/* dns.resolve(name, [opts]) -> {{addr =, family =, socktype =}, ...} */
static int dns_resolve(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  const char *name = cr_dns_checkstring(L, 1, "resolve");
  int family = AF_UNSPEC, socktype = SOCK_STREAM;
  double timeout = -1;
  resolveopts(L, 2, &family, &socktype, &timeout);
  if (*name == '\0') cr_argerror(L, 1, "resolve", "empty name");
  return cr_dns_getaddrinfo(L, lp, "resolve", name, NULL, family, socktype,
                            AI_CANONNAME, timeout, resolve_k);
}

static int reverse_k(lua_State *L, int status, lua_KContext ctx) {
  dnsop *op = (dnsop *)ctx;
  int err;
  (void)status;
  if (!take(L, op)) return cr_pushfail(L, "timeout");
  err = op->status;
  if (err == 0) lua_pushstring(L, op->host);
  free(op);
  return err == 0 ? 1 : cr_dns_pusherror(L, err);
}

/* dns.reverse(addr, [opts]) -> hostname (opts.timeout) */
static int dns_reverse(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  const char *addr = cr_dns_checkstring(L, 1, "reverse");
  double timeout = -1;
  struct sockaddr_storage ss;
  cr_task *me;
  dnsop *op;
  int r;
  if (cr_dns_numeric(addr, 0, &ss) != 0)
    cr_argerror(L, 1, "reverse", "not a numeric IPv4 or IPv6 address");
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_istable(L, 2)) cr_argerror(L, 2, "reverse", "table expected");
    lua_getfield(L, 2, "timeout");
    if (!lua_isnil(L, -1)) {
      timeout = lua_tonumber(L, -1);
      if (!lua_isnumber(L, -1) || !(timeout >= 0))
        cr_argerror(L, 2, "reverse", "timeout must be a number >= 0");
    }
    lua_pop(L, 1);
  }
  me = cr_task_enter(L, lp, "reverse");
  cr_task_checkcancel(L, me);
  op = newop(L, lp);
  r = uv_getnameinfo(&lp->uv, &op->req.gni, on_nameinfo,
                     (const struct sockaddr *)&ss, NI_NAMEREQD);
  if (r != 0) {
    free(op);
    return cr_dns_pusherror(L, r);
  }
  return cr_wait_on(L, me, &op->waiters, timeout, (lua_KContext)op,
                    reverse_k);
}

/* }================================================================= */

void cr_dns_open_lib(lua_State *L) {
  static const luaL_Reg dns[] = {
    {"resolve", dns_resolve},
    {"reverse", dns_reverse},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  lua_newtable(L);
  cr_setfuncs(L, dns, loopidx);
  lua_setfield(L, -2, "dns");
}
