/*
** process.c
** Child processes: corun.process.spawn(cmd, args, opts) on uv_spawn, with
** each of stdin/stdout/stderr "pipe" (a stream), "inherit" or "null".
** The uv_process_t is malloc'd and freed in its close callback, after the
** exit callback recorded the status and woke the waiters; a process object
** collected before its child exits leaves the child running.
*/

#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>

#include "corun.h"

#define CR_PROCESS_MT "corun.process"

typedef struct cr_process {
  cr_loop *loop;
  uv_process_t *h;            /* owned: freed in its close callback */
  int pid;
  int exited;
  int64_t code;
  int signal;                 /* terminating signal, or 0 */
  cr_list waiters;            /* tasks in wait() */
} cr_process;

static cr_process *checkprocess(lua_State *L) {
  return (cr_process *)luaL_checkudata(L, 1, CR_PROCESS_MT);
}

static void on_close_free(uv_handle_t *h) {
  free(h);
}

static void on_child_exit(uv_process_t *h, int64_t code, int sig) {
  cr_process *p = (cr_process *)h->data;
  uv_close((uv_handle_t *)h, on_close_free);
  if (p == NULL) return;  /* its object was collected */
  p->h = NULL;
  p->exited = 1;
  p->code = code;
  p->signal = sig;
  cr_wait_wakeall(&p->waiters, CR_OK);
}

static int pushstatus(lua_State *L, cr_process *p) {
  lua_pushinteger(L, p->code);
  if (p->signal != 0) lua_pushstring(L, cr_signame(p->signal));
  else lua_pushnil(L);
  return 2;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  cr_process *p = checkprocess(L);
  (void)status; (void)ctx;
  if (cr_task_outcome(L, p->loop->current) == CR_TIMEOUT) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return pushstatus(L, p);
}

/* p:wait([timeout]) -> exit code, signal name (or nil) */
static int process_wait(lua_State *L) {
  cr_process *p = checkprocess(L);
  double timeout = -1;
  cr_task *t;
  if (!lua_isnoneornil(L, 2)) {
    timeout = luaL_checknumber(L, 2);
    luaL_argcheck(L, timeout >= 0 && !isnan(timeout), 2,
                  "timeout must be >= 0");
  }
  if (p->exited) return pushstatus(L, p);
  t = cr_task_enter(L, p->loop, "wait");
  lua_settop(L, 1);
  return cr_wait_on(L, t, &p->waiters, timeout, 0, wait_k);
}

/* p:kill([sig]) -> true | nil, err */
static int process_kill(lua_State *L) {
  cr_process *p = checkprocess(L);
  int sig = cr_signum(L, 2, "term"), r;
  if (p->exited || p->h == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "ESRCH: the process has exited");
    return 2;
  }
  if ((r = uv_process_kill(p->h, sig)) != 0) return cr_pusherror(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

/* p:_ref(on): whether this child keeps the loop alive (the process pool
** keeps a worker referenced only while it runs a job). */
static int process_ref(lua_State *L) {
  cr_process *p = checkprocess(L);
  if (p->h != NULL) {
    if (lua_toboolean(L, 2)) uv_ref((uv_handle_t *)p->h);
    else uv_unref((uv_handle_t *)p->h);
  }
  return 0;
}

static int process_index(lua_State *L) {
  cr_process *p = checkprocess(L);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "pid") == 0) {
    lua_pushinteger(L, p->pid);
    return 1;
  }
  if (strcmp(k, "stdin") == 0 || strcmp(k, "stdout") == 0 ||
      strcmp(k, "stderr") == 0) {
    lua_getiuservalue(L, 1, k[3] == 'i' ? 1 : k[3] == 'o' ? 2 : 3);
    return 1;
  }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "methods");
  lua_getfield(L, -1, k);
  return 1;
}

static int process_gc(lua_State *L) {
  cr_process *p = (cr_process *)lua_touserdata(L, 1);
  if (p->h != NULL) p->h->data = NULL;  /* the child runs on, unwatched */
  return 0;
}

static int process_tostring(lua_State *L) {
  cr_process *p = checkprocess(L);
  lua_pushfstring(L, "corun.process %d (%s)", p->pid,
                  p->exited ? "exited" : "running");
  return 1;
}

/* {=================================================================
** spawn
** ================================================================== */

/* The string at 'idx' (not converted), checked for NUL bytes, which the
** OS would silently cut it at: 'what' names it in the error. */
static const char *nonul(lua_State *L, int idx, const char *what) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (s != NULL && strlen(s) != len)
    luaL_error(L, "spawn: %s cannot contain NUL", what);
  return s;
}

/* A NULL-terminated array of the strings of list 'idx' (after 'first'),
** in a userdata left on the stack. */
static char **strings(lua_State *L, int idx, const char *first,
                      const char *what) {
  lua_Integer i, n = idx > 0 && !lua_isnoneornil(L, idx) ? luaL_len(L, idx) : 0;
  int off = first != NULL;
  char **v = (char **)lua_newuserdatauv(L, (n + off + 1) * sizeof *v, 0);
  int holder;
  lua_createtable(L, (int)n, 0);  /* keeps converted numbers alive */
  holder = lua_gettop(L);
  if (off) v[0] = (char *)first;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (!lua_isstring(L, -1))
      luaL_error(L, "spawn: %s[%d] must be a string", what, (int)i);
    lua_pushvalue(L, -1);  /* nonul converts a number: keep the original */
    lua_tostring(L, -1);
    if (strlen(lua_tostring(L, -1)) != lua_rawlen(L, -1))
      luaL_error(L, "spawn: %s[%d] cannot contain NUL", what, (int)i);
    lua_pop(L, 1);
    v[i - 1 + off] = (char *)lua_tostring(L, -1);
    lua_rawseti(L, holder, i);
  }
  v[n + off] = NULL;
  return v;
}

/* "NAME=value" strings of the env table at 'idx' (kept on the stack). */
static char **environment(lua_State *L, int idx) {
  int n = 0, tab;
  char **v;
  lua_newtable(L);
  tab = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
      luaL_error(L, "spawn: env must map names to strings");
    if (strlen(lua_tostring(L, -2)) != lua_rawlen(L, -2))
      luaL_error(L, "spawn: env names cannot contain NUL");
    lua_pushvalue(L, -1);  /* a copy to convert, not the value lua_next uses */
    if (strlen(lua_tostring(L, -1)) != lua_rawlen(L, -1))
      luaL_error(L, "spawn: env value of '%s' cannot contain NUL",
                 lua_tostring(L, -3));
    lua_pop(L, 1);
    lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
    lua_rawseti(L, tab, ++n);
    lua_pop(L, 1);
  }
  v = (char **)lua_newuserdatauv(L, (n + 1) * sizeof *v, 0);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, tab, i + 1);
    v[i] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  v[n] = NULL;
  return v;
}

static const char *stdiomode(lua_State *L, int opts, const char *k) {
  const char *mode = "inherit";
  if (opts > 0) {
    lua_getfield(L, opts, k);
    mode = luaL_optstring(L, -1, "inherit");
    lua_pop(L, 1);  /* a string held by opts */
  }
  if (strcmp(mode, "pipe") != 0 && strcmp(mode, "null") != 0 &&
      strcmp(mode, "inherit") != 0)
    luaL_error(L, "spawn: %s must be \"pipe\", \"inherit\" or \"null\"", k);
  return mode;
}

/* The stdio option 'k' of opts (checked): fills 'c' (a pipe when asked). */
static int stdio(lua_State *L, cr_loop *lp, int opts, const char *k,
                 uv_stdio_container_t *c, int fd) {
  const char *mode = stdiomode(L, opts, k);
  if (strcmp(mode, "pipe") == 0) {
    uv_pipe_t *pipe = (uv_pipe_t *)malloc(sizeof *pipe);
    if (pipe == NULL) luaL_error(L, "spawn: not enough memory");
    uv_pipe_init(&lp->uv, pipe, 0);
    c->flags = (uv_stdio_flags)(UV_CREATE_PIPE |
               (fd == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
    c->data.stream = (uv_stream_t *)pipe;
    return 1;
  }
  if (strcmp(mode, "null") == 0) c->flags = UV_IGNORE;
  else {
    c->flags = UV_INHERIT_FD;
    c->data.fd = fd;
  }
  return 0;
}

/* process.spawn(cmd, [args], [opts]) -> process | nil, err */
static int process_spawn(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  const char *cmd = luaL_checkstring(L, 1);
  int opts = lua_istable(L, 3) ? 3 : 0, i, r, piped[3];
  uv_process_options_t o;
  uv_stdio_container_t io[3];
  cr_process *p;
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  nonul(L, 1, "cmd");
  memset(&o, 0, sizeof o);
  o.file = cmd;
  o.args = strings(L, lua_isnoneornil(L, 2) ? 0 : 2, cmd, "args");
  o.exit_cb = on_child_exit;
  if (opts) {
    if (lua_getfield(L, opts, "cwd") != LUA_TNIL) {
      luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 3, "cwd must be a string");
      o.cwd = nonul(L, -1, "cwd");  /* stays on the stack */
    }
    if (lua_getfield(L, opts, "env") == LUA_TTABLE)
      o.env = environment(L, lua_gettop(L));
  }
  stdiomode(L, opts, "stdin");  /* all checked before any pipe exists */
  stdiomode(L, opts, "stdout");
  stdiomode(L, opts, "stderr");
  p = (cr_process *)lua_newuserdatauv(L, sizeof *p, 3);
  memset(p, 0, sizeof *p);
  p->loop = lp;
  cr_list_init(&p->waiters);
  luaL_setmetatable(L, CR_PROCESS_MT);
  piped[0] = stdio(L, lp, opts, "stdin", &io[0], 0);
  piped[1] = stdio(L, lp, opts, "stdout", &io[1], 1);
  piped[2] = stdio(L, lp, opts, "stderr", &io[2], 2);
  o.stdio = io;
  o.stdio_count = 3;
  p->h = (uv_process_t *)malloc(sizeof *p->h);
  r = p->h == NULL ? UV_ENOMEM : uv_spawn(&lp->uv, p->h, &o);
  for (i = 0; i < 3; i++) {
    if (!piped[i]) continue;
    if (r != 0) {
      uv_close((uv_handle_t *)io[i].data.stream, on_close_free);
      continue;
    }
    cr_stream_push(L, lp, io[i].data.stream);
    lua_setiuservalue(L, -2, i + 1);
  }
  if (r != 0) {
    if (p->h != NULL) uv_close((uv_handle_t *)p->h, on_close_free);
    p->h = NULL;
    return cr_pusherror(L, r);
  }
  p->h->data = p;
  p->pid = p->h->pid;
  if (opts) {  /* keepalive = false: the child alone keeps no loop alive */
    lua_getfield(L, opts, "keepalive");
    if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
      uv_unref((uv_handle_t *)p->h);
    lua_pop(L, 1);
  }
  return 1;
}

/* }================================================================= */

/* {=================================================================
** For process-pool workers and the master
** ================================================================== */

static int file_close(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  return luaL_fileresult(L, fclose(p->f) == 0, NULL);
}

static void pushfile(lua_State *L, int fd, const char *mode) {
  luaL_Stream *p = (luaL_Stream *)lua_newuserdatauv(L, sizeof *p, 0);
  p->closef = NULL;
  luaL_setmetatable(L, LUA_FILEHANDLE);
  p->f = fdopen(fd, mode);
  if (p->f == NULL) luaL_error(L, "cannot open the worker's channel");
  p->closef = file_close;
}

/* process.worker_stdio() -> in, out: the pipes to the master as files;
** this process's own stdout then goes to stderr and stdin reads nothing,
** so that what a job prints cannot corrupt the protocol. */
static int process_worker_stdio(lua_State *L) {
  int in = dup(0), out = dup(1), null = open("/dev/null", O_RDONLY);
  if (in < 0 || out < 0 || null < 0) return luaL_error(L, "worker: dup");
  fflush(stdout);
  dup2(2, 1);
  dup2(null, 0);
  close(null);
  pushfile(L, in, "rb");
  pushfile(L, out, "wb");
  return 2;
}

/* process.cpus() -> the number of CPUs this process may use. */
static int process_cpus(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_available_parallelism());
  return 1;
}

/* process.exe() -> the path of this process's executable. */
static int process_exe(lua_State *L) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return 0;
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

/* }================================================================= */

void cr_process_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"spawn", process_spawn},
    {"worker_stdio", process_worker_stdio},
    {"exe", process_exe},
    {"cpus", process_cpus},
    {NULL, NULL}
  };
  static const luaL_Reg meta[] = {
    {"__index", process_index}, {"__gc", process_gc},
    {"__tostring", process_tostring}, {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"wait", process_wait}, {"kill", process_kill}, {"_ref", process_ref},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  lua_newtable(L);
  cr_setfuncs(L, funcs, loopidx);
  lua_setfield(L, -2, "process");
  luaL_newmetatable(L, CR_PROCESS_MT);
  cr_setfuncs(L, meta, loopidx);
  lua_newtable(L);
  cr_setfuncs(L, methods, loopidx);
  lua_setfield(L, -2, "methods");
  lua_pop(L, 1);
}
