/*
** core.c
** luaopen_corun_core: creates this state's loop and registers every
** function and metatable of the C core. Each function gets the loop as its
** first upvalue (cr_loop_get).
*/

#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <string.h>

#include "corun.h"

/* The optional timeout at 'arg': seconds >= 0, or -1 for none. */
double cr_opttimeout(lua_State *L, int arg) {
  double d;
  if (lua_isnoneornil(L, arg)) return -1;
  d = luaL_checknumber(L, arg);
  luaL_argcheck(L, d >= 0 && d == d, arg, "timeout must be >= 0");
  return d;
}

/* Push nil, why (an expected outcome: "timeout", "closed", ...). */
int cr_pushfail(lua_State *L, const char *why) {
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* Light-userdata registry keys of the hot metatables. */
const char cr_task_mtkey = 0, cr_queue_mtkey = 0;

/* The userdata at 'idx' if it is 'size' bytes long and holds 'magic' at
** offset 'moff' (one of corun's own objects), else NULL. Cheaper than
** luaL_testudata, which looks the metatable up by name. */
void *cr_toudata(lua_State *L, int idx, size_t size, size_t moff,
                 unsigned magic) {
  void *p;
  if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) != size)
    return NULL;
  p = lua_touserdata(L, idx);
  if (*(unsigned *)((char *)p + moff) != magic) return NULL;
  return p;
}

/* Set the metatable registered under 'key' on the value on top. */
void cr_setmetatable(lua_State *L, const char *key) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, key);
  lua_setmetatable(L, -2);
}

/* Like luaL_setfuncs into the table on top, with the loop as upvalue 1. */
void cr_setfuncs(lua_State *L, const luaL_Reg *l, int loopidx) {
  loopidx = lua_absindex(L, loopidx);
  for (; l->name != NULL; l++) {
    lua_pushvalue(L, loopidx);
    lua_pushcclosure(L, l->func, 1);
    lua_setfield(L, -2, l->name);
  }
}

/* A metatable 'name' with metamethods 'meta' and __index = 'methods'. */
void cr_newclass(lua_State *L, const char *name, const luaL_Reg *meta,
                 const luaL_Reg *methods, int loopidx) {
  loopidx = lua_absindex(L, loopidx);
  luaL_newmetatable(L, name);
  cr_setfuncs(L, meta, loopidx);
  lua_newtable(L);
  cr_setfuncs(L, methods, loopidx);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* core.methods(name): the method table of a corun class ("corun.pool"),
** for the Lua layer to add methods composed in Lua. */
static int core_methods(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  luaL_argcheck(L, strncmp(name, "corun.", 6) == 0, 1, "not a corun class");
  if (luaL_getmetatable(L, name) != LUA_TTABLE)
    return luaL_error(L, "no class '%s'", name);
  lua_getfield(L, -1, "__index");
  return 1;
}

/* Keep this library mapped for the life of the process: worker threads of
** a pool nobody closed may still run its code after lua_close unloads
** C modules. */
static void pin(void) {
  Dl_info info;
  if (dladdr((void *)pin, &info) != 0 && info.dli_fname != NULL)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

LUA_API int luaopen_corun_core(lua_State *L) __attribute__((visibility("default")));

LUA_API int luaopen_corun_core(lua_State *L) {
  /* A write to a closed socket or pipe returns EPIPE instead of killing
  ** the process (what libuv programs, node and python do). */
  signal(SIGPIPE, SIG_IGN);
  pin();
  cr_loop_open(L);
  lua_newtable(L);
  cr_loop_open_lib(L);
  cr_task_open_lib(L);
  cr_queue_open_lib(L);
  cr_sync_open_lib(L);
  cr_codec_open_lib(L);
  cr_channel_open_lib(L);
  cr_thread_open_lib(L);
  cr_fs_open_lib(L);
  cr_signal_open_lib(L);
  cr_stream_open_lib(L);
  cr_process_open_lib(L);
#ifdef CORUN_REDIS
  cr_redis_open_lib(L);
#endif
#ifdef CORUN_TLS
  cr_tls_open_lib(L);
#endif
#ifdef CORUN_HTTP
  cr_http_client_open_lib(L);
  cr_http_server_open_lib(L);
#endif
  lua_pushcfunction(L, core_methods);
  lua_setfield(L, -2, "methods");
  lua_pushliteral(L, "0.1.0");
  lua_setfield(L, -2, "version");
  return 1;
}
