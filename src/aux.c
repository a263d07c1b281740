/*
** aux.c
** Helpers every file of the C core shares: optional timeouts, the fail
** returns, corun's userdata and classes, argument and callable checks,
** describing error objects, libuv error pushing and signal names.
*/

#include <signal.h>
#include <string.h>
#include <strings.h>

#include "corun.h"

/* cr_opttimeout (corun.h) when there is an argument 'arg'. */
double cr_opttimeout_arg(lua_State *L, int arg) {
  double d;
  if (lua_isnil(L, arg)) return -1;
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

/* Is the value at 'idx' callable: a function, or a value whose metatable
** has __call? Leaves the stack as it was. */
int cr_iscallable(lua_State *L, int idx) {
  int r;
  if (lua_isfunction(L, idx)) return 1;
  r = luaL_getmetafield(L, idx, "__call") != LUA_TNIL;
  if (r) lua_pop(L, 1);
  return r;
}

/* Argument 'arg' must be callable (see cr_iscallable); raises otherwise. */
void cr_checkcallable(lua_State *L, int arg) {
  if (!cr_iscallable(L, arg)) luaL_typeerror(L, arg, "function");
}

static int tolstring(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* Push a description of the value at 'idx' (an error object) and return
** it. Unlike luaL_tolstring it never raises: when __tostring raises, or
** returns no string, the description says so ("error object (table:
** 0x...; __tostring failed: ...)"). */
const char *cr_describe(lua_State *L, int idx) {
  const char *why;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    lua_pushvalue(L, idx);
    return lua_tostring(L, -1);
  }
  lua_pushcfunction(L, tolstring);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) return lua_tostring(L, -1);
  why = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                        : luaL_typename(L, -1);
  lua_pushfstring(L, "error object (%s: %p; __tostring failed: %s)",
                  luaL_typename(L, idx), lua_topointer(L, idx), why);
  lua_remove(L, -2);
  return lua_tostring(L, -1);
}

/* The name of the running C function as Lua called it (as luaL_argerror
** finds it), for error messages; "corun" when there is none. */
const char *cr_fname(lua_State *L) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name != NULL)
    return ar.name;
  return "corun";
}

/* luaL_argerror(L, arg, msg), naming the function 'fname' when Lua's call
** information has no name for it (a method called through pcall, where
** luaL_argerror would say '?'). Same spelling either way. */
int cr_badarg(lua_State *L, int arg, const char *fname, const char *msg) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name != NULL)
    return luaL_argerror(L, arg, msg);
  return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, fname, msg);
}

/* Raise "<function>: not enough memory". */
int cr_nomem(lua_State *L) {
  return luaL_error(L, "%s: not enough memory", cr_fname(L));
}

/* Light-userdata registry keys of the hot metatables. */
const char cr_task_mtkey = 0, cr_queue_mtkey = 0;

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

/* Push nil and libuv's "ENAME: message" for error 'e'; returns 2. */
int cr_pusherror(lua_State *L, int e) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(e), uv_strerror(e));
  return 2;
}

/* An argument error naming 'fname' (functions of sub-tables such as
** corun.tcp are not found by luaL_argerror's search for a name). */
int cr_argerror(lua_State *L, int arg, const char *fname, const char *msg) {
  return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, fname, msg);
}

static const struct { const char *name; int sig; } signames[] = {
  {"term", SIGTERM}, {"kill", SIGKILL}, {"int", SIGINT}, {"hup", SIGHUP},
  {"quit", SIGQUIT}, {"usr1", SIGUSR1}, {"usr2", SIGUSR2},
  {"stop", SIGSTOP}, {"cont", SIGCONT}, {"winch", SIGWINCH},
  {"abrt", SIGABRT}, {"segv", SIGSEGV}, {"pipe", SIGPIPE},
  {"alrm", SIGALRM}, {NULL, 0}
};

/* A signal number from a name ("term", "SIGTERM") or a number. */
int cr_signum(lua_State *L, int arg, const char *def) {
  const char *s;
  int i;
  if (lua_type(L, arg) == LUA_TNUMBER) return (int)luaL_checkinteger(L, arg);
  s = luaL_optstring(L, arg, def);
  if (strncmp(s, "SIG", 3) == 0 || strncmp(s, "sig", 3) == 0) s += 3;
  for (i = 0; signames[i].name != NULL; i++)
    if (strcasecmp(s, signames[i].name) == 0) return signames[i].sig;
  return luaL_argerror(L, arg, lua_pushfstring(L, "unknown signal '%s'", s));
}

const char *cr_signame(int sig) {
  int i;
  for (i = 0; signames[i].name != NULL; i++)
    if (signames[i].sig == sig) return signames[i].name;
  return "unknown";
}
