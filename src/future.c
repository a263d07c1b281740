/*
** future.c
** Futures: shareable objects completed once with an encoded result (or
** error), by another thread (corun.thread, pools, loop:submit) or by the
** process pool's manager task in Lua (core.future and its _start,
** _resolve and _fail), and waited for by tasks (through wait groups) or
** by plain threads (on a condition variable). One future type for
** threads and processes.
**
** Lock order: a future's mutex, then a loop handle's or a group's mutex.
*/

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corun.h"

#define CR_FUTURE_MT "corun.future"


/* Failed futures released with nobody having seen their error, in this
** process (the runner's exit status counts them). */
static _Atomic int unretrieved;

int cr_thread_unretrieved(void) {
  return atomic_load(&unretrieved);
}

void cr_thread_count_unretrieved(void) {
  atomic_fetch_add(&unretrieved, 1);
}

/* {=================================================================
** Futures
** ================================================================== */

static void future_destroy(cr_shared *s) {
  cr_future *f = (cr_future *)s;
  if (f->error != NULL && !atomic_load(&f->retrieved)) {
    fprintf(stderr, "corun: a thread or job failed and nobody waited for "
                    "it: %s\n", f->error);
    fflush(stderr);
    cr_thread_count_unretrieved();
  }
  free(f->error);
  if (f->value != NULL) cr_msg_free(f->value);
  uv_cond_destroy(&f->cond);
  uv_mutex_destroy(&f->lk.mu);
  free(f);
}

const cr_shared_type cr_future_type = { CR_FUTURE_MT, future_destroy };

cr_future *cr_future_new(void) {
  cr_future *f = (cr_future *)calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  if (uv_mutex_init(&f->lk.mu) != 0 || uv_cond_init(&f->cond) != 0) {
    free(f);
    return NULL;
  }
  cr_shared_init(&f->lk.base, &cr_future_type);
  cr_list_init(&f->waiters);
  return f;
}

/* Complete 'f' with 'state' and message 'm' (owned by f from now on). */
void cr_future_set(cr_future *f, int state, cr_msg *m) {
  uv_mutex_lock(&f->lk.mu);
  if (f->state >= FUT_DONE) {  /* cancelled meanwhile: drop the result */
    uv_mutex_unlock(&f->lk.mu);
    if (m != NULL) cr_msg_free(m);
    return;
  }
  f->state = state;
  f->value = m;
  while (!cr_list_empty(&f->waiters)) {
    cr_case *c = cr_container_of(cr_list_head(&f->waiters), cr_case, node);
    if (!cr_wait_complete(c, CR_OK, NULL)) cr_list_remove(&c->node);
  }
  uv_cond_broadcast(&f->cond);
  uv_mutex_unlock(&f->lk.mu);
}

/* {=================================================================
** Encoding without raising (in threads without a task to fail)
** ================================================================== */


int cr_encode_p(lua_State *L) {
  cr_encoding *e = (cr_encoding *)lua_touserdata(L, 1);
  e->out = cr_codec_encode(L, 2, lua_gettop(L) - 1, e->what, e->flags);
  return 0;
}

/* Encode (and pop) the 'n' values on top. On failure returns NULL and
** leaves the error message on top. */
cr_msg *cr_encode_safe(lua_State *L, int n, const char *what,
                           int flags) {
  cr_encoding e;
  e.what = what;
  e.flags = flags;
  e.out = NULL;
  lua_pushcfunction(L, cr_encode_p);
  lua_pushlightuserdata(L, &e);
  lua_rotate(L, -n - 2, 2);
  if (lua_pcall(L, n + 1, 0, 0) != LUA_OK) return NULL;
  return e.out;
}

/* Complete 'f' with the n values on top (popped), or with the error of
** encoding them. */
void cr_future_resolve(lua_State *L, cr_future *f, int n) {
  cr_msg *m = cr_encode_safe(L, n, "results", CR_CODEC_FUNCTIONS);
  if (m != NULL) {
    cr_future_set(f, FUT_DONE, m);
    return;
  }
  m = cr_encode_safe(L, 1, "error", 0);  /* the message: a string */
  cr_future_set(f, FUT_FAILED, m);
}

/* Complete 'f' as failed with the error value on top (popped), sent as a
** string (its traceback is part of it). */
/* Replace the value on top by a string describing it. Its __tostring
** runs protected: one that raises, yields or returns a non-string gives
** a fallback description instead. */
void cr_thread_tostring(lua_State *L) {
  if (lua_type(L, -1) == LUA_TSTRING) return;
  if (!lua_checkstack(L, 4)) {  /* keep a stack slot for the literal */
    lua_pop(L, 1);
    lua_pushliteral(L, "error object (no stack space to describe it)");
    return;
  }
  cr_describe(L, -1);         /* never raises */
  lua_remove(L, -2);
}

void cr_future_fail(lua_State *L, cr_future *f) {
  cr_msg *m;
  size_t n;
  const char *text;
  cr_thread_tostring(L);
  text = lua_tolstring(L, -1, &n);
  if (f->error == NULL && (f->error = (char *)malloc(n + 1)) != NULL)
    memcpy(f->error, text, n + 1);  /* for the report if nobody waits */
  m = cr_encode_safe(L, 1, "error", 0);
  if (m == NULL) lua_pop(L, 1);
  cr_future_set(f, FUT_FAILED, m);
}

/* }================================================================= */


/* {=================================================================
** future objects in Lua
** ================================================================== */

static cr_future *checkfuture(lua_State *L) {
  return (cr_future *)cr_shared_check(L, 1, &cr_future_type);
}

/* Push the results of finished 'f', or raise its error. */
static int pushresult(lua_State *L, cr_future *f) {
  int n = 0;
  if (f->state == FUT_CANCELLED) {
    cr_pushcancelled(L, 0);
    return lua_error(L);
  }
  if (f->value != NULL) n = cr_codec_decode(L, f->value, CR_CODEC_FUNCTIONS);
  if (f->state == FUT_FAILED) {
    atomic_store(&f->retrieved, 1);
    if (n == 0) lua_pushliteral(L, "the job failed");
    return lua_error(L);
  }
  return n;
}

static int future_k(lua_State *L, int status, lua_KContext ctx) {
  cr_task *me = cr_loop_get(L)->current;
  cr_wgroup *g = me->wg;
  (void)status; (void)ctx;
  cr_task_setgroup(me, NULL);
  cr_wait_free(g);
  if (me->outcome != CR_OK) {
    cr_task_outcome(L, me);  /* raises Cancelled */
    return cr_pushfail(L, "timeout");
  }
  return pushresult(L, checkfuture(L));
}

/* future:wait([timeout]): a task parks; a plain thread blocks. */
static int future_wait(lua_State *L) {
  cr_future *f = checkfuture(L);
  double timeout = cr_opttimeout(L, 2);
  cr_loop *lp = cr_loop_get(L);
  cr_task *me = cr_wait_caller(L, lp, "wait");
  cr_wgroup *g = NULL;
  int state;
  uv_mutex_lock(&f->lk.mu);
  if (f->state < FUT_DONE && me != NULL && timeout != 0) {
    g = cr_wait_new(me, 1);
    if (g != NULL) cr_wait_link(&g->cases[0], &f->lk, &f->waiters);
  }
  else if (me == NULL && timeout != 0) {  /* a plain thread blocks */
    uint64_t end = timeout < 0 ? 0 : uv_hrtime() + (uint64_t)(timeout * 1e9);
    while (f->state < FUT_DONE) {
      uint64_t now = uv_hrtime();
      if (timeout < 0) uv_cond_wait(&f->cond, &f->lk.mu);
      else if (now >= end ||
               uv_cond_timedwait(&f->cond, &f->lk.mu, end - now) != 0)
        break;
    }
  }
  state = f->state;  /* once done, state and value never change */
  uv_mutex_unlock(&f->lk.mu);
  if (state >= FUT_DONE) return pushresult(L, f);
  if (g == NULL) {
    if (me != NULL && timeout != 0) return luaL_error(L, "not enough memory");
    return cr_pushfail(L, "timeout");
  }
  lua_settop(L, 1);
  return cr_wait_park(L, me, g, timeout, 0, future_k);
}

static int future_done(lua_State *L) {
  cr_future *f = checkfuture(L);
  int done;
  uv_mutex_lock(&f->lk.mu);
  done = f->state >= FUT_DONE;
  uv_mutex_unlock(&f->lk.mu);
  lua_pushboolean(L, done);
  return 1;
}

/* future:cancel(): true if it had not started (it never will). */
static int future_cancel(lua_State *L) {
  cr_future *f = checkfuture(L);
  int pending;
  uv_mutex_lock(&f->lk.mu);
  pending = f->state == FUT_PENDING;
  uv_mutex_unlock(&f->lk.mu);
  if (pending) cr_future_set(f, FUT_CANCELLED, NULL);
  lua_pushboolean(L, pending);
  return 1;
}

static int future_tostring(lua_State *L) {
  static const char *const names[] = {
    "pending", "running", "done", "failed", "cancelled"
  };
  cr_future *f = checkfuture(L);
  int state;
  uv_mutex_lock(&f->lk.mu);
  state = f->state;
  uv_mutex_unlock(&f->lk.mu);
  lua_pushfstring(L, "corun.future (%s): %p", names[state], (void *)f);
  return 1;
}

void cr_future_push(lua_State *L, cr_future *f) {
  cr_shared_retain(&f->lk.base);
  cr_shared_push(L, &f->lk.base);
}

/* }================================================================= */



/* {=================================================================
** Futures completed from Lua (the process pool)
** ================================================================== */

/* core.future() -> a pending future. */
static int future_new_lua(lua_State *L) {
  cr_future *f = cr_future_new();
  if (f == NULL) return luaL_error(L, "future: not enough memory");
  cr_shared_push(L, &f->lk.base);
  return 1;
}

/* future:_start() -> true, now running; false if it was cancelled. */
static int future_start(lua_State *L) {
  cr_future *f = checkfuture(L);
  int pending;
  uv_mutex_lock(&f->lk.mu);
  pending = f->state == FUT_PENDING;
  if (pending) f->state = FUT_RUNNING;
  uv_mutex_unlock(&f->lk.mu);
  lua_pushboolean(L, pending);
  return 1;
}

/* future:_resolve(...): done with these results. */
static int future_resolve_lua(lua_State *L) {
  cr_future *f = checkfuture(L);
  cr_future_resolve(L, f, lua_gettop(L) - 1);
  return 0;
}

/* future:_fail(err): failed with this error. */
static int future_fail_lua(lua_State *L) {
  cr_future *f = checkfuture(L);
  lua_settop(L, 2);
  cr_future_fail(L, f);
  return 0;
}

/* core._unretrieved(text): report a failed job whose error nobody saw
** (the process pool's futures, when collected) and count it. */
static int report_unretrieved(lua_State *L) {
  const char *text = luaL_checkstring(L, 1);
  fprintf(stderr, "corun: a thread or job failed and nobody waited for "
                  "it: %s\n", text);
  fflush(stderr);
  cr_thread_count_unretrieved();
  return 0;
}

void cr_future_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"future", future_new_lua},
    {"_unretrieved", report_unretrieved},
    {NULL, NULL}
  };
  static const luaL_Reg futmeta[] = {
    {"__tostring", future_tostring}, {NULL, NULL}
  };
  static const luaL_Reg futm[] = {
    {"wait", future_wait}, {"join", future_wait}, {"done", future_done},
    {"cancel", future_cancel}, {"_start", future_start},
    {"_resolve", future_resolve_lua}, {"_fail", future_fail_lua},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  cr_shared_newclass(L, &cr_future_type, futmeta, futm, loopidx);
}
