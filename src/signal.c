/*
** signal.c
** corun.signal: wait(name, [timeout]) parks the calling task until the
** signal arrives; on(name, fn) runs fn(name) as a callback each time it
** arrives, until handler:cancel(). Names: "int", "term", "hup", "usr1",
** "usr2", "winch".
**
** Each loop has one watcher per signal (a malloc'd uv_signal_t, freed in
** its close callback), made on first use and owned by the signal state: a
** userdata in the registry whose __gc closes the watchers. It is created
** after the loop, so it is finalized first and the loop's __gc finishes
** the closes. A watcher is started while tasks wait on it or handlers are
** registered, and referenced only while tasks wait: handlers alone do not
** keep the loop, or the runner, alive.
**
** The libuv callback wakes every waiting task and, when there are
** handlers, schedules each one as a callback (cr_loop_callback). That
** runs under lua_pcall on the driver's state, so running out of memory
** cannot raise through libuv; it never calls a handler itself. Handlers
** are listed, in registration order, in the state's uservalue:
** {[signal index] = {handler, ...}}.
**
** Errors: misuse raises an argument error (cr_argerror, one spelling);
** libuv failing to watch a signal is returned as nil, "ENAME: message",
** "ENAME".
**
** While the script watches "int" itself (lp->int_handlers > 0), the
** runner's SIGINT default (cancel the main task, exit 130) stays off.
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>

#include "corun.h"

#define CR_SIGHANDLER_MT    "corun.signal_handler"
#define CR_SIGSTATE_MT      "corun.signal_state"
#define CR_SIGHANDLER_MAGIC 0x7a5c0030u

static const struct {
  const char *name;
  int signum;
} signals[] = {
  {"int", SIGINT}, {"term", SIGTERM}, {"hup", SIGHUP}, {"usr1", SIGUSR1},
  {"usr2", SIGUSR2}, {"winch", SIGWINCH}, {"quit", SIGQUIT}
};

#define NSIGNALS ((int)(sizeof signals / sizeof signals[0]))
#define SIG_INT 0                 /* index of "int" */
#define SIG_QUIT 6                /* index of "quit" */

typedef struct cr_sigwatch {
  uv_signal_t h;              /* the watcher is freed in its close callback */
  cr_loop *loop;
  cr_list waiters;            /* tasks parked in signal.wait */
  int nhandlers;              /* active signal.on handlers */
  int counted;                /* "int"/"quit": adds 1 to the loop's count */
  int which;                  /* index in signals[] */
} cr_sigwatch;

typedef struct cr_sigstate {
  cr_loop *loop;
  cr_sigwatch *w[NSIGNALS];   /* owned: closed by the state's __gc */
} cr_sigstate;

typedef struct cr_sighandler {
  cr_loop *loop;
  int which;
  int active;                 /* listed in the state's table */
  unsigned magic;
} cr_sighandler;              /* uservalue 1: the function */

static const char statekey = 0;  /* registry key of the signal state */

/* The loop's count of the script's own watchers of "int" or "quit": while
** it is > 0, the runner's default for that signal stands aside. */
static int *handlers(cr_sigwatch *w) {
  return w->which == SIG_INT ? &w->loop->int_handlers
                             : &w->loop->quit_handlers;
}

static cr_sigstate *pushstate(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &statekey);
  return (cr_sigstate *)lua_touserdata(L, -1);
}

/* Push the handler list of signal 'which'. */
static void pushlist(lua_State *L, int which) {
  pushstate(L);
  lua_getiuservalue(L, -1, 1);
  lua_rawgeti(L, -1, which + 1);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* {=================================================================
** Watchers
** ================================================================== */


static int schedule(lua_State *L) {
  cr_sigwatch *w = (cr_sigwatch *)lua_touserdata(L, 1);
  lua_Integer i, n;
  pushlist(L, w->which);
  n = (lua_Integer)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    cr_sighandler *h;
    lua_rawgeti(L, -1, i);
    h = (cr_sighandler *)lua_touserdata(L, -1);
    lua_getiuservalue(L, -1, 1);
    lua_pushstring(L, signals[w->which].name);
    if (h != NULL && h->active) cr_loop_callback(L, w->loop, -2, 1, -1);
    lua_settop(L, 2);
  }
  return 0;
}

/* Schedule the handlers of 'w', protected: this runs in a libuv
** callback, on the state that drives the loop. */
static void fire(cr_sigwatch *w) {
  lua_State *L = w->loop->L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 3)) return;
  lua_pushcfunction(L, schedule);
  lua_pushlightuserdata(L, w);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "corun: signal %s: cannot run its handlers: %s\n",
            signals[w->which].name, lua_tostring(L, -1));
    fflush(stderr);
    w->loop->failures++;
  }
  lua_settop(L, top);
}

static void on_signal(uv_signal_t *h, int signum) {
  cr_sigwatch *w = (cr_sigwatch *)h->data;
  (void)signum;
  cr_wait_wakeall(&w->waiters, CR_OK);
  if (w->nhandlers > 0) fire(w);
}

/* Start, reference or stop 'w' by who needs it; 'extra' counts a task
** about to park on it. Returns 0 or a libuv error. */
static int update(cr_sigwatch *w, int extra) {
  uv_handle_t *h = (uv_handle_t *)&w->h;
  int waiting = extra || !cr_list_empty(&w->waiters);
  int on = waiting || w->nhandlers > 0, r = 0;
  if (on && !uv_is_active(h))
    r = uv_signal_start(&w->h, on_signal, signals[w->which].signum);
  else if (!on && uv_is_active(h))
    uv_signal_stop(&w->h);
  if (r != 0) on = 0;
  if (waiting) uv_ref(h);
  else uv_unref(h);
  if ((w->which == SIG_INT || w->which == SIG_QUIT) && on != w->counted) {
    *handlers(w) += on ? 1 : -1;
    w->counted = on;
  }
  return r;
}

/* The watcher of signal 'which', made on first use; NULL (and the libuv
** error in *err) when libuv cannot make one. */
static cr_sigwatch *watcher(lua_State *L, int which, int *err) {
  cr_sigstate *st = pushstate(L);
  cr_sigwatch *w = st->w[which];
  lua_pop(L, 1);
  if (w != NULL) return w;
  if ((w = (cr_sigwatch *)calloc(1, sizeof *w)) == NULL) cr_nomem(L);
  if ((*err = uv_signal_init(&st->loop->uv, &w->h)) != 0) {
    free(w);
    return NULL;
  }
  w->h.data = w;
  w->loop = st->loop;
  w->which = which;
  cr_list_init(&w->waiters);
  uv_unref((uv_handle_t *)&w->h);
  st->w[which] = w;
  return w;
}

static void on_closed(uv_handle_t *h) {
  free(h->data);
}

static int state_gc(lua_State *L) {
  cr_sigstate *st = (cr_sigstate *)lua_touserdata(L, 1);
  int i;
  for (i = 0; i < NSIGNALS; i++) {
    cr_sigwatch *w = st->w[i];
    if (w == NULL) continue;
    while (!cr_list_empty(&w->waiters))
      cr_list_remove(cr_list_head(&w->waiters));
    if (w->counted) (*handlers(w))--;
    uv_close((uv_handle_t *)&w->h, on_closed);
    st->w[i] = NULL;
  }
  return 0;
}

/* }================================================================= */


/* {=================================================================
** The Lua functions
** ================================================================== */

static int checksig(lua_State *L, int arg, const char *fname) {
  const char *name;
  int i;
  if (lua_type(L, arg) != LUA_TSTRING)
    return cr_argerror(L, arg, fname, lua_pushfstring(L,
                       "string expected, got %s", luaL_typename(L, arg)));
  name = lua_tostring(L, arg);
  for (i = 0; i < NSIGNALS; i++)
    if (strcmp(name, signals[i].name) == 0) return i;
  return cr_argerror(L, arg, fname, lua_pushfstring(L, "unknown signal '%s': "
                     "expected \"int\", \"term\", \"hup\", \"usr1\", "
                     "\"usr2\", \"winch\" or \"quit\"", name));
}

static double opttimeout(lua_State *L, int arg, const char *fname) {
  double d;
  if (lua_isnoneornil(L, arg)) return -1;
  d = lua_tonumber(L, arg);
  if (!lua_isnumber(L, arg) || !(d >= 0))
    cr_argerror(L, arg, fname, "timeout must be a number >= 0");
  return d;
}

/* libuv could not watch the signal: nil, "ENAME: message", "ENAME". */
static int sigerror(lua_State *L, int r) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(r), uv_strerror(r));
  lua_pushstring(L, uv_err_name(r));
  return 3;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  cr_sigwatch *w = (cr_sigwatch *)ctx;
  (void)status;
  update(w, 0);  /* the task is no longer linked, whatever woke it */
  if (cr_task_outcome(L, w->loop->current) == CR_TIMEOUT) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  lua_pushstring(L, signals[w->which].name);
  return 1;
}

/* signal.wait(name, [timeout]) -> name | nil, "timeout" | nil, err, ENAME */
static int signal_wait(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  int which = checksig(L, 1, "signal.wait"), r;
  double timeout = opttimeout(L, 2, "signal.wait");
  cr_task *me = cr_task_enter(L, lp, "signal.wait");
  cr_sigwatch *w;
  cr_task_checkcancel(L, me);
  if ((w = watcher(L, which, &r)) == NULL) return sigerror(L, r);
  if ((r = update(w, 1)) != 0) {
    update(w, 0);
    return sigerror(L, r);
  }
  lua_settop(L, 0);
  return cr_wait_on(L, me, &w->waiters, timeout, (lua_KContext)w, wait_k);
}

/* signal.on(name, fn) -> handler: fn(name) runs as a callback each time
** the signal arrives, until handler:cancel(). A registered handler does
** not keep the loop alive by itself. */
static int signal_on(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  int which = checksig(L, 1, "signal.on"), r;
  cr_sighandler *h;
  cr_sigwatch *w;
  if (!cr_iscallable(L, 2))
    cr_argerror(L, 2, "signal.on", lua_pushfstring(L,
                "function expected, got %s", luaL_typename(L, 2)));
  lua_settop(L, 2);
  if ((w = watcher(L, which, &r)) == NULL) return sigerror(L, r);
  h = (cr_sighandler *)lua_newuserdatauv(L, sizeof *h, 1);
  memset(h, 0, sizeof *h);  /* inactive until listed */
  h->loop = lp;
  h->which = which;
  h->magic = CR_SIGHANDLER_MAGIC;
  luaL_setmetatable(L, CR_SIGHANDLER_MT);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 3, 1);
  pushlist(L, which);
  lua_pushvalue(L, 3);
  lua_rawseti(L, 4, (lua_Integer)lua_rawlen(L, 4) + 1);
  h->active = 1;
  w->nhandlers++;
  if ((r = update(w, 0)) != 0) {  /* it stays listed, inactive */
    h->active = 0;
    w->nhandlers--;
    update(w, 0);
    return sigerror(L, r);
  }
  lua_settop(L, 3);
  return 1;
}

static cr_sighandler *checkhandler(lua_State *L) {
  cr_sighandler *h = cr_testobj(L, 1, cr_sighandler, CR_SIGHANDLER_MAGIC);
  if (h == NULL) luaL_typeerror(L, 1, CR_SIGHANDLER_MT);
  return h;
}

/* Remove the handler at 1 from the list on top. */
static void unlist(lua_State *L) {
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_rawequal(L, -1, 1)) break;
    lua_pop(L, 1);
  }
  lua_settop(L, 2);
  for (; i < n; i++) {
    lua_rawgeti(L, 2, i + 1);
    lua_rawseti(L, 2, i);
  }
  lua_pushnil(L);
  lua_rawseti(L, 2, n);
}

/* handler:cancel() -> true, or false when already cancelled */
static int handler_cancel(lua_State *L) {
  cr_sighandler *h = checkhandler(L);
  cr_sigwatch *w;
  if (!h->active) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_settop(L, 1);
  w = pushstate(L)->w[h->which];
  lua_pop(L, 1);
  pushlist(L, h->which);
  unlist(L);
  h->active = 0;
  w->nhandlers--;
  update(w, 0);
  lua_pushboolean(L, 1);
  return 1;
}

static int handler_cancelled(lua_State *L) {
  lua_pushboolean(L, !checkhandler(L)->active);
  return 1;
}

static int handler_tostring(lua_State *L) {
  cr_sighandler *h = checkhandler(L);
  lua_pushfstring(L, "corun.signal_handler (%s, %s): %p",
                  signals[h->which].name,
                  h->active ? "active" : "cancelled", (void *)h);
  return 1;
}

/* }================================================================= */


/* The signal state of this Lua state, made once (closed-first: no
** watcher until one is needed). */
static void newstate(lua_State *L, int loopidx) {
  cr_sigstate *st;
  int i;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &statekey) == LUA_TUSERDATA) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  st = (cr_sigstate *)lua_newuserdatauv(L, sizeof *st, 1);
  memset(st, 0, sizeof *st);
  st->loop = (cr_loop *)lua_touserdata(L, loopidx);
  luaL_newmetatable(L, CR_SIGSTATE_MT);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_createtable(L, NSIGNALS, 0);
  for (i = 1; i <= NSIGNALS; i++) {
    lua_newtable(L);
    lua_rawseti(L, -2, i);
  }
  lua_setiuservalue(L, -2, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &statekey);
}

/* Adds module.signal; [loop, module] on the stack. */
void cr_signal_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"wait", signal_wait},
    {"on", signal_on},
    {NULL, NULL}
  };
  static const luaL_Reg meta[] = {
    {"__tostring", handler_tostring},
    {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"cancel", handler_cancel},
    {"cancelled", handler_cancelled},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;
  newstate(L, loopidx);
  lua_createtable(L, 0, 2);
  cr_setfuncs(L, funcs, loopidx);
  lua_setfield(L, -2, "signal");
  cr_newclass(L, CR_SIGHANDLER_MT, meta, methods, loopidx);
}
