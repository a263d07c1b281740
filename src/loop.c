/*
** loop.c
** The per-thread loop: a libuv loop, the FIFO ready queue shared by tasks
** and callbacks, the timer min-heap with one uv_timer armed to its earliest
** deadline, callback handles (call_soon / call_later / call_at), and the
** driver that resumes tasks. This file is the only place that dispatches
** ready entries; nothing is resumed from a libuv callback.
**
** The driver drains the ready queue in detached batches (what became ready
** during a batch runs in the next one, so FIFO order holds). Between
** batches it expires timers when any are armed and, every POLL_EVERY
** batches once POLL_NS have passed since the last poll, polls libuv
** without blocking when it has live handles (a poll is a system call:
** switch-bound work must not pay one every few switches). It blocks
** in uv_run(UV_RUN_ONCE) only when nothing is ready.
*/

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "corun.h"

#define POLL_EVERY 64            /* batches between looks at the clock */
#define POLL_NS 100000u          /* at least this long between I/O polls */

/* Once the main task has finished, a timer due further than this (2^32 s,
** about 136 years) from now, or at an infinite time, counts as never
** firing: it does not keep the loop alive (a task sleeping on it alone is
** blocked forever). While the main task runs it does: sleep(math.huge) in
** the main task is how a loop is kept running until stopped. */
#define NEVER 4294967296.0
#define LOOP_KEY "corun.loop.instance"

/* {=================================================================
** Clock and timers
** ================================================================== */

double cr_loop_now(cr_loop *lp) {
  if (lp->virtual_clock) return lp->vnow;
  return (double)uv_hrtime() / 1e9;
}

void cr_loop_ready(cr_loop *lp, cr_entry *e) {
  assert(!cr_list_linked(&e->node));  /* in the ready queue at most once */
  assert(e->kind != CR_SCHED_TASK ||  /* and then in no wait list */
         !cr_list_linked(&((cr_task *)e)->wnode));
  cr_list_push(&lp->ready, &e->node);
}

/* Arm 'tm' to fire 'delay' seconds from now. Returns 0, or -1 on ENOMEM. */
int cr_loop_arm(cr_loop *lp, cr_timer *tm, double delay) {
  double now = cr_loop_now(lp);
  if (delay < 0) delay = 0;
  tm->deadline = now + delay;
  while (tm->deadline - now < delay)  /* so that time() - t0 >= delay */
    tm->deadline = nextafter(tm->deadline, INFINITY);
  tm->seq = lp->seq++;
  return cr_heap_insert(&lp->timers, tm);
}

void cr_loop_disarm(cr_loop *lp, cr_timer *tm) {
  cr_heap_remove(&lp->timers, tm);
}

/* Move every timer due at 'now' to the ready queue, in deadline order. */
static void expire(cr_loop *lp, double now) {
  cr_timer *tm;
  while ((tm = cr_heap_min(&lp->timers)) != NULL && tm->deadline <= now) {
    cr_entry *e = cr_container_of(tm, cr_entry, timer);
    cr_heap_remove(&lp->timers, tm);
    if (e->kind == CR_SCHED_CALLBACK)
      cr_handle_timer(lp, (cr_handle *)e);
    else
      cr_task_timer(lp, (cr_task *)e);
  }
}

static void on_close(uv_handle_t *h) {
  (void)h;
}

static void on_timer(uv_timer_t *h) {
  (void)h;  /* only wakes uv_run; expire() does the work */
}

/* }================================================================= */


/* {=================================================================
** Anchors: live tasks and pending handles are kept alive by a reference
** in one of two tables (CR_LUV_TASKS, CR_LUV_HANDLES) held in the registry.
** ================================================================== */

static int anchor_ref[CR_LUV_N + 1];  /* registry refs, same in every state */

void cr_loop_pushanchors(lua_State *L, int slot) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &anchor_ref[slot]);
}

/* Anchor the value at 'idx' in table 'slot'; returns its key. Keys come
** from a free list kept in C (one array per slot, grown by doubling), so
** anchoring and unanchoring are one table store each. */
int cr_loop_anchor(lua_State *L, cr_loop *lp, int slot, int idx) {
  cr_refs *r = &lp->refs[slot];
  int ref;
  idx = lua_absindex(L, idx);
  if (r->nfree == 0 && r->cap == r->n) {  /* grow the free list first */
    int cap = r->cap ? r->cap * 2 : 64;
    int *v = (int *)realloc(r->free, cap * sizeof *v);
    if (v == NULL) cr_nomem(L);
    r->free = v;
    r->cap = cap;
  }
  ref = r->nfree > 0 ? r->free[--r->nfree] : ++r->n;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->aref[slot]);  /* array part: fast */
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, ref);
  lua_pop(L, 1);
  return ref;
}

void cr_loop_unanchor(lua_State *L, cr_loop *lp, int slot, int ref) {
  cr_refs *r = &lp->refs[slot];
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->aref[slot]);
  lua_pushnil(L);
  lua_rawseti(L, -2, ref);
  lua_pop(L, 1);
  r->free[r->nfree++] = ref;  /* cannot overflow: cap >= n >= nfree */
}

void cr_loop_pushanchored(lua_State *L, cr_loop *lp, int slot, int ref) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->aref[slot]);
  lua_rawgeti(L, -1, ref);
  lua_replace(L, -2);  /* cheaper than lua_remove (a rotate) */
}

/* }================================================================= */


/* {=================================================================
** The inbox: work other threads post to this loop (cr_post), handed over
** under the handle's mutex and run in this thread by the async callback.
** ================================================================== */

static void lhandle_destroy(cr_shared *s) {
  cr_lhandle *lh = (cr_lhandle *)s;
  uv_mutex_destroy(&lh->mu);
  free(lh);
}

const cr_shared_type cr_lhandle_type = { "corun.loophandle", lhandle_destroy };

/* Post 'p' to the loop of 'lh'; -1 when that loop has closed. */
int cr_loop_post(cr_lhandle *lh, cr_post *p) {
  int r = -1;
  uv_mutex_lock(&lh->mu);
  if (lh->loop != NULL) {
    cr_list_push(&lh->inbox, &p->node);
    uv_async_send(&lh->loop->async);
    r = 0;
  }
  uv_mutex_unlock(&lh->mu);
  return r;
}

static void on_async(uv_async_t *a) {
  cr_loop *lp = (cr_loop *)a->data;
  cr_list batch, *n;
  uv_mutex_lock(&lp->lh->mu);
  cr_list_move(&lp->lh->inbox, &batch);
  uv_mutex_unlock(&lp->lh->mu);
  while ((n = cr_list_shift(&batch)) != NULL) {
    cr_post *p = cr_container_of(n, cr_post, node);
    p->run(lp->L, lp, p);
  }
}

/* Completions other threads owe this loop keep it alive. */
void cr_loop_remote(cr_loop *lp, int delta) {
  lp->remote += delta;
  if (lp->remote > 0)
    uv_ref((uv_handle_t *)&lp->async);
  else
    uv_unref((uv_handle_t *)&lp->async);
}

static int inbox_open(cr_loop *lp) {
  cr_lhandle *lh = (cr_lhandle *)malloc(sizeof *lh);
  if (lh == NULL || uv_mutex_init(&lh->mu) != 0) {
    free(lh);
    return -1;
  }
  cr_shared_init(&lh->base, &cr_lhandle_type);
  cr_list_init(&lh->inbox);
  lh->loop = lp;
  lp->lh = lh;
  uv_async_init(&lp->uv, &lp->async, on_async);
  lp->async.data = lp;
  uv_unref((uv_handle_t *)&lp->async);
  cr_inspect_add(lh);
  return 0;
}

/* The loop is closing: refuse new posts, drop what was posted. */
static void inbox_close(cr_loop *lp) {
  cr_list batch, *n;
  cr_inspect_remove(lp->lh);
  uv_mutex_lock(&lp->lh->mu);
  lp->lh->loop = NULL;
  cr_list_move(&lp->lh->inbox, &batch);
  uv_mutex_unlock(&lp->lh->mu);
  while ((n = cr_list_shift(&batch)) != NULL) {
    cr_post *p = cr_container_of(n, cr_post, node);
    p->drop(p);
  }
  uv_close((uv_handle_t *)&lp->async, on_close);
  cr_shared_release(&lp->lh->base);
}

/* }================================================================= */


/* {=================================================================
** The driver
** ================================================================== */

static void dispatch(lua_State *L, cr_loop *lp, cr_list *n) {
  cr_entry *e = cr_container_of(n, cr_entry, node);
  assert(lp->current == NULL);  /* the driver alone resumes tasks */
  if (e->kind == CR_SCHED_TASK)
    cr_task_dispatch(L, lp, (cr_task *)e);
  else
    cr_handle_dispatch(L, lp, (cr_handle *)e);
}

/* Nothing is ready: wait for a timer or I/O. Returns 0 when nothing can
** happen any more (no timer, no live libuv handle or request). */
static cr_timer *nexttimer(cr_loop *lp, int never) {
  cr_timer *tm = cr_heap_min(&lp->timers);
  if (never && tm != NULL && !(tm->deadline - cr_loop_now(lp) <= NEVER))
    return NULL;  /* never fires (also an infinite or NaN deadline) */
  return tm;
}

static int idle(cr_loop *lp, int never) {
  cr_timer *tm = nexttimer(lp, never);
  int io = uv_loop_alive(&lp->uv);
  if (lp->virtual_clock) {
    if (io) uv_run(&lp->uv, UV_RUN_NOWAIT);
    if (!cr_list_empty(&lp->ready)) return 1;
    if ((tm = nexttimer(lp, never)) != NULL) {
      if (tm->deadline > lp->vnow) lp->vnow = tm->deadline;
      expire(lp, lp->vnow);
      return 1;
    }
    if (!uv_loop_alive(&lp->uv)) return 0;
    uv_run(&lp->uv, UV_RUN_ONCE);
    return 1;
  }
  if (tm == NULL && !io) return 0;
  if (tm != NULL) {
    double wait = tm->deadline - cr_loop_now(lp);
    if (wait <= 0) {
      expire(lp, cr_loop_now(lp));
      return 1;
    }
    if (!(wait <= NEVER)) wait = NEVER;  /* an infinite wait: no overflow */
    uv_update_time(&lp->uv);
    uv_timer_start(&lp->timer, on_timer, (uint64_t)ceil(wait * 1000.0), 0);
  }
  uv_run(&lp->uv, UV_RUN_ONCE);
  if (tm != NULL) {
    uv_timer_stop(&lp->timer);
    expire(lp, cr_loop_now(lp));
  }
  return 1;
}

/* Poll I/O without blocking while tasks keep the loop busy. The runner's
** SIGINT watcher is unreferenced (it must not keep the loop alive), so it
** is referenced for the poll: libuv skips polling a loop with nothing
** referenced. */
static void poll(cr_loop *lp) {
  if (lp->sigint_on) uv_ref((uv_handle_t *)&lp->sigint);
  if (uv_loop_alive(&lp->uv)) uv_run(&lp->uv, UV_RUN_NOWAIT);
  if (lp->sigint_on) uv_unref((uv_handle_t *)&lp->sigint);
}

/* Run until 'until' has finished (or, when NULL, until nothing can happen
** any more; while draining, until no task is left: a server still open
** must not keep a teardown waiting). Returns 1 when stopped by
** corun.stop() or SIGINT, else 0. */
int cr_loop_run(lua_State *L, cr_loop *lp, int loopidx, cr_task *until) {
  cr_list batch, *n;
  unsigned batches = 0;
  uint64_t polled = uv_hrtime();
  (void)loopidx;
  lp->L = L;
  for (;;) {
    if (lp->stop_flag) return 1;
    if (until != NULL && until->status != CR_PENDING) return 0;
    if (cr_list_empty(&lp->ready)) {
      if (until == NULL && lp->draining && lp->ntasks == 0) return 0;
      if (!idle(lp, until == NULL)) return 0;
      continue;
    }
    cr_list_move(&lp->ready, &batch);
    while ((n = cr_list_shift(&batch)) != NULL)
      dispatch(L, lp, n);
    if (lp->timers.n > 0) expire(lp, cr_loop_now(lp));
    if (++batches % POLL_EVERY == 0 && uv_hrtime() - polled >= POLL_NS) {
      poll(lp);
      polled = uv_hrtime();
    }
  }
}

static void on_sigint(uv_signal_t *h, int signum) {
  cr_loop *lp = (cr_loop *)h->data;
  (void)signum;
  if (lp->int_handlers > 0) return;
  lp->sigints++;
  if (lp->sigints == 1 && lp->main != NULL && lp->main->status == CR_PENDING)
    cr_task_cancel(NULL, lp->main, 0);
  else
    lp->stop_flag = 1;
}

void cr_loop_sigint(cr_loop *lp, int on) {
  if (on && !lp->sigint_on) {
    uv_signal_start(&lp->sigint, on_sigint, SIGINT);
    uv_unref((uv_handle_t *)&lp->sigint);
  }
  else if (!on && lp->sigint_on)
    uv_signal_stop(&lp->sigint);
  lp->sigint_on = (unsigned char)on;
}

/* }================================================================= */


/* {=================================================================
** Callback handles
** ================================================================== */

static cr_handle *checkhandle(lua_State *L) {
  return (cr_handle *)luaL_checkudata(L, 1, CR_HANDLE_MT);
}

static int msgh(lua_State *L) {
  const char *msg = cr_describe(L, 1);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

void cr_handle_timer(cr_loop *lp, cr_handle *h) {
  cr_loop_ready(lp, (cr_entry *)h);
}

/* Run a due callback: unanchor it, then call it protected. An error is
** reported on stderr and counted as a failure; it never stops the loop. */
void cr_handle_dispatch(lua_State *L, cr_loop *lp, cr_handle *h) {
  int i, base = lua_gettop(L);
  cr_loop_pushanchored(L, lp, CR_LUV_HANDLES, h->ref);
  cr_loop_unanchor(L, lp, CR_LUV_HANDLES, h->ref);
  h->ref = LUA_NOREF;
  lua_pushcfunction(L, msgh);
  luaL_checkstack(L, h->nargs + 1, "too many arguments");
  for (i = 1; i <= h->nargs + 1; i++)
    lua_getiuservalue(L, base + 1, i);
  if (lua_pcall(L, h->nargs, 0, base + 2) != LUA_OK) {
    fprintf(stderr, "corun: error in callback: %s\n", cr_describe(L, -1));
    fflush(stderr);
    lp->failures++;
  }
  lua_settop(L, base);
}

/* Schedule the callable at 'fidx' with the 'nargs' values after it, to run
** after 'delay' seconds (< 0: call_soon). Pushes the handle. */
int cr_loop_callback(lua_State *L, cr_loop *lp, int fidx, int nargs,
                     double delay) {
  cr_handle *h;
  int i;
  fidx = lua_absindex(L, fidx);
  if (nargs > CR_MAXARGS)
    return luaL_error(L, "%s: too many arguments to a callback (at most %d)",
                      cr_fname(L), CR_MAXARGS);
  h = (cr_handle *)lua_newuserdatauv(L, sizeof *h, nargs + 1);
  h->kind = CR_SCHED_CALLBACK;
  cr_list_init(&h->node);
  h->timer.slot = -1;
  h->loop = lp;
  h->ref = LUA_NOREF;
  h->nargs = nargs;
  luaL_setmetatable(L, CR_HANDLE_MT);
  for (i = 0; i <= nargs; i++) {
    lua_pushvalue(L, fidx + i);
    lua_setiuservalue(L, -2, i + 1);
  }
  if (delay >= 0 && cr_loop_arm(lp, &h->timer, delay) != 0)
    return cr_nomem(L);
  h->ref = cr_loop_anchor(L, lp, CR_LUV_HANDLES, -1);
  if (delay < 0) cr_loop_ready(lp, (cr_entry *)h);
  return 1;
}

static int schedule(lua_State *L, int fidx, double delay, const char *fname) {
  cr_checkcallable(L, fidx);
  if (lua_gettop(L) - fidx > CR_MAXARGS)
    return luaL_error(L, "%s: too many arguments to a callback (at most %d)",
                      fname, CR_MAXARGS);
  return cr_loop_callback(L, cr_loop_get(L), fidx, lua_gettop(L) - fidx,
                          delay);
}

static double checkdelay(lua_State *L, int arg) {
  double d = luaL_checknumber(L, arg);
  luaL_argcheck(L, d >= 0 && !isnan(d), arg, "delay must be >= 0");
  return d;
}

static int loop_call_soon(lua_State *L) {
  return schedule(L, 1, -1, "call_soon");
}

static int loop_call_later(lua_State *L) {
  return schedule(L, 2, checkdelay(L, 1), "call_later");
}

static int loop_call_at(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  double when = luaL_checknumber(L, 1);
  luaL_argcheck(L, !isnan(when), 1, "time must be a number");
  when -= cr_loop_now(lp);
  return schedule(L, 2, when > 0 ? when : 0, "call_at");
}

static int cancelhandle(lua_State *L, cr_handle *h) {
  if (h->ref == LUA_NOREF) return 0;
  cr_list_remove(&h->node);
  cr_loop_disarm(h->loop, &h->timer);
  cr_loop_unanchor(L, h->loop, CR_LUV_HANDLES, h->ref);
  h->ref = LUA_NOREF;
  h->nargs = -1;  /* marks "cancelled" */
  return 1;
}

static int handle_cancel(lua_State *L) {
  lua_pushboolean(L, cancelhandle(L, checkhandle(L)));
  return 1;
}

static int handle_cancelled(lua_State *L) {
  lua_pushboolean(L, checkhandle(L)->nargs < 0);
  return 1;
}

static int handle_tostring(lua_State *L) {
  cr_handle *h = checkhandle(L);
  const char *st = h->nargs < 0 ? "cancelled"
                 : h->ref == LUA_NOREF ? "done" : "pending";
  lua_pushfstring(L, "corun.handle (%s): %p", st, (void *)h);
  return 1;
}

/* Drop every pending callback (the end of a corun.run). */
void cr_handle_drop_all(lua_State *L, cr_loop *lp) {
  cr_loop_pushanchors(L, CR_LUV_HANDLES);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    cr_handle *h = (cr_handle *)luaL_testudata(L, -1, CR_HANDLE_MT);
    lua_pop(L, 1);
    if (h != NULL && h->ref != LUA_NOREF) {
      cr_list_remove(&h->node);
      cr_loop_disarm(lp, &h->timer);
      h->ref = LUA_NOREF;
      h->nargs = -1;
    }
  }
  lua_pop(L, 1);
  lua_newtable(L);  /* a fresh table drops every anchor at once */
  lua_pushvalue(L, -1);
  lua_rawseti(L, LUA_REGISTRYINDEX, lp->aref[CR_LUV_HANDLES]);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &anchor_ref[CR_LUV_HANDLES]);
  lp->refs[CR_LUV_HANDLES].n = lp->refs[CR_LUV_HANDLES].nfree = 0;
}

/* }================================================================= */


/* {=================================================================
** The loop object and corun.run
** ================================================================== */

static int loop_gc(lua_State *L) {
  cr_loop *lp = (cr_loop *)lua_touserdata(L, 1);
  if (lp->closed) return 0;
  lp->closed = 1;
  inbox_close(lp);
  uv_close((uv_handle_t *)&lp->timer, on_close);
  uv_close((uv_handle_t *)&lp->sigint, on_close);
  uv_close((uv_handle_t *)&lp->sigquit, on_close);
  uv_run(&lp->uv, UV_RUN_DEFAULT);
  uv_loop_close(&lp->uv);
  cr_heap_free(&lp->timers);
  for (int i = 0; i <= CR_LUV_N; i++) free(lp->refs[i].free);
  return 0;
}

/* Push this state's loop, creating it on first use. */
cr_loop *cr_loop_open(lua_State *L) {
  cr_loop *lp;
  int slot;
  if (lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY) == LUA_TUSERDATA)
    return (cr_loop *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  lp = (cr_loop *)lua_newuserdatauv(L, sizeof *lp, 0);
  memset(lp, 0, sizeof *lp);
  lp->closed = 1;  /* closed-first: __gc is harmless until initialised */
  luaL_newmetatable(L, CR_LOOP_MT);
  lua_pushcfunction(L, loop_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  if (uv_loop_init(&lp->uv) != 0) luaL_error(L, "corun: cannot create loop");
  uv_timer_init(&lp->uv, &lp->timer);
  uv_signal_init(&lp->uv, &lp->sigint);
  uv_unref((uv_handle_t *)&lp->sigint);
  lp->sigint.data = lp;
  uv_signal_init(&lp->uv, &lp->sigquit);
  uv_unref((uv_handle_t *)&lp->sigquit);
  lp->sigquit.data = lp;
  if (inbox_open(lp) != 0) luaL_error(L, "corun: cannot create loop");
  lp->L = L;
  lp->closed = 0;
  cr_list_init(&lp->ready);
  cr_list_init(&lp->gathers);
  cr_heap_init(&lp->timers);
  lp->next_id = 1;
  for (slot = 1; slot <= CR_LUV_N; slot++) {
    lua_newtable(L);
    if (slot == CR_LUV_FAILED) {  /* weak: a collected task reports itself */
      lua_createtable(L, 0, 1);
      lua_pushliteral(L, "v");
      lua_setfield(L, -2, "__mode");
      lua_setmetatable(L, -2);
    }
    lua_pushvalue(L, -1);
    lp->aref[slot] = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &anchor_ref[slot]);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
  return lp;
}

cr_loop *cr_loop_get(lua_State *L) {
  return (cr_loop *)lua_touserdata(L, lua_upvalueindex(1));
}

/* Cancel every live task, give them a chance to clean up, then close
** whatever still refuses to finish. */
static void teardown(lua_State *L, cr_loop *lp) {
  lp->stop_flag = 0;
  /* Tasks' cleanup, not other threads, is what teardown waits for: a
  ** thread that never ends must not keep corun.run from returning (the
  ** runner has already waited for its threads before this). */
  uv_unref((uv_handle_t *)&lp->async);
  cr_task_finish_all(L, lp);
  cr_handle_drop_all(L, lp);
  cr_loop_remote(lp, 0);  /* restores the async handle's reference */
  lp->main = NULL;
}

/* Raise "file:line: msg" at the caller of corun.run (level 2: core.run
** is called by corun.run in init.lua). 'msg' is on top. */
static int runerror(lua_State *L) {
  luaL_where(L, 2);
  lua_insert(L, -2);
  lua_concat(L, 2);
  return lua_error(L);
}

/* Why the main task did not finish ('unfinished' is CR_PENDING when it
** did not), as corun.run raises it; 'report' is the index of the blocked
** tasks' report (a deadlock) or 0. */
static int run_error(lua_State *L, int unfinished, int stopped, int report) {
  if (unfinished != CR_PENDING) return 0;
  if (stopped)
    lua_pushliteral(L,
        "corun.run: the loop was stopped before the main task finished");
  else {
    lua_pushliteral(L, "corun.run: deadlock: the main task is blocked and "
                       "nothing left can wake it");
    if (report != 0) {
      lua_pushvalue(L, report);
      lua_concat(L, 2);
    }
  }
  return runerror(L);
}

/* core.run(mode, fn, ...): mode is a string of words: "virtual" (virtual
** clock), "script" (the runner: keep going after main, SIGINT handling,
** return an exit status instead of raising), "strict" (an error of a task
** nobody retrieved fails the run, as busted's corun.async wants). */
static int loop_run(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  const char *mode = luaL_optstring(L, 1, "");
  int script = strstr(mode, "script") != NULL;
  int thread = strstr(mode, "thread") != NULL;
  int strict = strstr(mode, "strict") != NULL;
  int stopped, mainidx, status = 0, unfinished, report = 0;
  cr_task *main;
  if (lp->running || lp->current != NULL) {
    lua_pushliteral(L, "corun.run: cannot be called from inside a running "
                       "loop (spawn a task or join one instead)");
    return runerror(L);
  }
  main = cr_task_spawn(L, lp, 2, lua_gettop(L) - 2);
  mainidx = lua_gettop(L);
  lua_pushliteral(L, "main");
  cr_task_setname(L, mainidx);
  lp->running = 1;
  lp->script = (unsigned char)script;
  lp->stop_flag = 0;
  lp->sigints = 0;
  lp->main = main;
  if (strstr(mode, "virtual") != NULL) {
    lp->vnow = 0;
    lp->virtual_clock = 1;
  }
  if (script) {
    cr_loop_sigint(lp, 1);
    cr_inspect_sigquit(lp, 1);
  }
  stopped = cr_loop_run(L, lp, 0, main);
  if (script && !stopped && main->status == CR_DONE)
    stopped = cr_loop_run(L, lp, 0, NULL);
  unfinished = main->status;
  if (unfinished == CR_PENDING && !stopped && lp->sigints == 0) {
    cr_task_pushblocked(L, lp);  /* before teardown cancels them */
    report = lua_gettop(L);
  }
  teardown(L, lp);
  cr_loop_sigint(lp, 0);
  lp->virtual_clock = 0;
  lp->running = 0;
  lp->script = 0;
  if (script) {
    if (unfinished != CR_PENDING && (main->status == CR_FAILED ||
        (main->status == CR_CANCELLED_ST && lp->sigints == 0))) {
      cr_task_retrieved(L, main);  /* a Cancelled error not from SIGINT */
      lua_getiuservalue(L, mainidx, CR_TUV_VALUE);
      fprintf(stderr, "corun: %s\n", cr_describe(L, -1));
      status = 1;
    }
    lua_gc(L, LUA_GCCOLLECT);  /* collected failed tasks report themselves */
    cr_task_report(L, lp);
    if (lp->failures > 0) status = 1;
    if (lp->sigints > 0) status = 130;
    else if (unfinished == CR_PENDING) {
      fprintf(stderr, "corun: %s%s\n", stopped
              ? "the loop was stopped before the main chunk finished"
              : "deadlock: the main chunk is blocked and nothing left can "
                "wake it",
              report != 0 ? lua_tostring(L, report) : "");
      status = 1;
    }
    fflush(stderr);
    lp->failures = 0;
    lua_pushinteger(L, status);
    return 1;
  }
  if (main->status == CR_FAILED) cr_task_retrieved(L, main);
  if (strict && main->status == CR_DONE) {
    int first = cr_task_pushfirstfailure(L, lp);
    cr_task_report(L, lp);
    if (lp->failures > 0) {  /* also those reported when collected */
      lp->failures = 0;
      if (!first) lua_pushliteral(L, "a task or callback failed (see above)");
      lua_pushliteral(L, "corun.run: an error nobody retrieved: ");
      lua_insert(L, -2);
      lua_concat(L, 2);
      return runerror(L);
    }
    if (first) lua_pop(L, 1);
  }
  cr_task_report(L, lp);
  lp->failures = 0;
  if (thread && stopped && unfinished == CR_PENDING)
    return 0;  /* loop:stop() ends a thread's loop normally */
  run_error(L, unfinished, stopped, report);
  return cr_task_pushresults(L, main, mainidx);
}

/* core.script_main(): true inside the runner's main task itself, where
** corun.run runs its function as a task on the running loop. */
static int loop_script_main(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  lua_pushboolean(L, lp->running && lp->script && lp->main != NULL &&
                     lp->current == lp->main && lp->main->co == L);
  return 1;
}

static int loop_time(lua_State *L) {
  lua_pushnumber(L, cr_loop_now(cr_loop_get(L)));
  return 1;
}

static int loop_stop(lua_State *L) {
  cr_loop_get(L)->stop_flag = 1;
  return 0;
}

static int loop_running(lua_State *L) {
  lua_pushboolean(L, cr_loop_get(L)->running);
  return 1;
}

void cr_loop_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"run", loop_run},
    {"time", loop_time},
    {"stop", loop_stop},
    {"running", loop_running},
    {"script_main", loop_script_main},
    {"call_soon", loop_call_soon},
    {"call_later", loop_call_later},
    {"call_at", loop_call_at},
    {NULL, NULL}
  };
  static const luaL_Reg hmeta[] = {
    {"__tostring", handle_tostring},
    {NULL, NULL}
  };
  static const luaL_Reg hmethods[] = {
    {"cancel", handle_cancel},
    {"cancelled", handle_cancelled},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  cr_newclass(L, CR_HANDLE_MT, hmeta, hmethods, loopidx);
}

/* }================================================================= */
