/*
** sockopt.c
** Socket methods of TCP streams, for corun.socket (the LuaSocket layer)
** and for scripts: stream:getpeername(), getsockname(), shutdown(),
** setoption(name, value), fileno(), and the layer's private _take(max)
** and _buffered(). They are added to the corun.stream method table, which
** stream.c has registered before (see core.c's opener order).
** Failures are nil, "ENAME: message", "ENAME"; misuse raises; methods
** on a closed stream return nil, "closed".
*/

#include <stdlib.h>
#include <string.h>

#include "corun.h"

/* The open TCP handle of the stream at 1, or NULL with nil, "closed" (or
** an ENOTSUP failure for a pipe) pushed: *n is then the result count. */
static uv_tcp_t *checktcp(lua_State *L, const char *fname, int *n) {
  uv_stream_t *h;
  if (luaL_testudata(L, 1, CR_STREAM_MT) == NULL)
    luaL_error(L, "bad argument #1 to '%s' (corun.stream expected, got %s)",
               fname, luaL_typename(L, 1));
  h = cr_stream_handle(L, 1);
  if (h == NULL) {
    *n = cr_pushfail(L, "closed");
    return NULL;
  }
  if (h->type != UV_TCP) {
    *n = cr_dns_pusherror(L, UV_ENOTSUP);
    return NULL;
  }
  return (uv_tcp_t *)h;
}

static int pushname(lua_State *L, int peer) {
  int n, port, len, r;
  struct sockaddr_storage ss;
  uv_tcp_t *h = checktcp(L, peer ? "getpeername" : "getsockname", &n);
  if (h == NULL) return n;
  len = sizeof ss;
  r = peer ? uv_tcp_getpeername(h, (struct sockaddr *)&ss, &len)
           : uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len);
  if (r != 0) return cr_dns_pusherror(L, r);
  cr_dns_pushaddr(L, (struct sockaddr *)&ss, &port);
  lua_pushinteger(L, port);
  lua_pushstring(L, ss.ss_family == AF_INET6 ? "inet6" : "inet");
  return 3;
}

/* stream:getpeername() / stream:getsockname() -> host, port, family */
static int stream_getpeername(lua_State *L) { return pushname(L, 1); }
static int stream_getsockname(lua_State *L) { return pushname(L, 0); }

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  free(req);
}

/* stream:shutdown() -> true: no more writes (the peer reads EOF once the
** queued writes are out); reading goes on. */
static int stream_shutdown(lua_State *L) {
  int n, r;
  uv_shutdown_t *req;
  uv_tcp_t *h = checktcp(L, "shutdown", &n);
  if (h == NULL) return n;
  req = (uv_shutdown_t *)malloc(sizeof *req);
  if (req == NULL) return luaL_error(L, "shutdown: not enough memory");
  if ((r = uv_shutdown(req, (uv_stream_t *)h, on_shutdown)) != 0) {
    free(req);
    if (r == UV_ENOTCONN) {  /* shut down already */
      lua_pushboolean(L, 1);
      return 1;
    }
    return cr_dns_pusherror(L, r);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:setoption(name, value) -> true | nil, err, code. Names:
** "nodelay" (boolean), "keepalive" (false, true or the idle seconds before
** the first probe; true: 60), "sndbuf", "rcvbuf" (bytes). */
static int stream_setoption(lua_State *L) {
  int n, r, v;
  const char *name;
  uv_tcp_t *h;
  name = cr_dns_checkstring(L, 2, "setoption");
  if (strcmp(name, "nodelay") != 0 && strcmp(name, "keepalive") != 0 &&
      strcmp(name, "sndbuf") != 0 && strcmp(name, "rcvbuf") != 0)
    return luaL_error(L, "bad argument #2 to 'setoption' (unknown option "
                         "'%s')", name);
  if ((h = checktcp(L, "setoption", &n)) == NULL) return n;
  if (strcmp(name, "nodelay") == 0)
    r = uv_tcp_nodelay(h, lua_toboolean(L, 3));
  else if (strcmp(name, "keepalive") == 0) {
    v = lua_isinteger(L, 3) ? (int)lua_tointeger(L, 3) : 60;
    if (v <= 0)
      luaL_error(L, "bad argument #3 to 'setoption' (seconds must be > 0)");
    r = uv_tcp_keepalive(h, lua_toboolean(L, 3), (unsigned)v);
  }
  else {
    if (!lua_isinteger(L, 3) || (v = (int)lua_tointeger(L, 3)) <= 0)
      luaL_error(L, "bad argument #3 to 'setoption' (size must be > 0)");
    r = name[0] == 's' ? uv_send_buffer_size((uv_handle_t *)h, &v)
                       : uv_recv_buffer_size((uv_handle_t *)h, &v);
  }
  if (r != 0) return cr_dns_pusherror(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:fileno() -> the descriptor, or nil once closed */
static int stream_fileno(lua_State *L) {
  uv_stream_t *h;
  uv_os_fd_t fd;
  luaL_checkudata(L, 1, CR_STREAM_MT);
  h = cr_stream_handle(L, 1);
  if (h == NULL || uv_fileno((uv_handle_t *)h, &fd) != 0) return 0;
  lua_pushinteger(L, (lua_Integer)fd);
  return 1;
}

/* stream:_take([max]) -> up to max (default all) buffered bytes, at once */
static int stream_take(lua_State *L) {
  lua_Integer max = luaL_optinteger(L, 2, LUA_MAXINTEGER);
  luaL_checkudata(L, 1, CR_STREAM_MT);
  cr_stream_take(L, 1, max < 0 ? 0 : (size_t)max);
  return 1;
}

/* stream:_buffered() -> bytes received and not yet read */
static int stream_buffered(lua_State *L) {
  luaL_checkudata(L, 1, CR_STREAM_MT);
  lua_pushinteger(L, (lua_Integer)cr_stream_buffered(L, 1));
  return 1;
}

/* core.gettimeofday() -> seconds since the epoch, microsecond precision
** (LuaSocket's socket.gettime) */
static int core_gettimeofday(lua_State *L) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0) return 0;
  lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
  return 1;
}

/* core.gethostname() -> this machine's name | nil, err, code */
static int core_gethostname(lua_State *L) {
  char buf[256];
  size_t len = sizeof buf;
  int r = uv_os_gethostname(buf, &len);
  if (r != 0) return cr_dns_pusherror(L, r);
  lua_pushlstring(L, buf, len);
  return 1;
}

void cr_sockopt_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"gettimeofday", core_gettimeofday}, {"gethostname", core_gethostname},
    {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"getpeername", stream_getpeername}, {"getsockname", stream_getsockname},
    {"shutdown", stream_shutdown}, {"setoption", stream_setoption},
    {"fileno", stream_fileno}, {"_take", stream_take},
    {"_buffered", stream_buffered}, {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  luaL_getmetatable(L, CR_STREAM_MT);
  lua_getfield(L, -1, "__index");
  cr_setfuncs(L, methods, loopidx);
  lua_pop(L, 2);
}
