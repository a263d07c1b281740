/*
** task.c
** Tasks: a userdata owning a coroutine, anchored in the loop while alive.
** Parking links the task's embedded waiter into a primitive's wait list
** (and arms its embedded timer for a timeout) and yields with a
** continuation; waking writes the outcome and makes the task ready. Neither
** allocates. Finishing stores the results (or the error with its
** traceback), closes pending to-be-closed variables of a failed coroutine
** (lua_resetthread), wakes joiners and schedules done callbacks.
**
** Cancellation: task:cancel() counts a request ('ncancel'). A parked task is
** woken at once with CR_CANCELLED; any other unfinished task gets
** 'cancel_pending', delivered by its next park. A task cancelled before its
** first run never enters its body.
*/

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <math.h>

#include "corun.h"

/* Registry key of the metatable of failed tasks: the task metatable plus
** a __gc that reports an error nobody retrieved. Only failed tasks get it,
** so other tasks cost the collector no finalizer call. */
static const char failed_mtkey = 0;

static cr_task *checktask(lua_State *L, int idx) {
  cr_task *t = cr_testobj(L, idx, cr_task, CR_TASK_MAGIC);
  if (t == NULL) luaL_typeerror(L, idx, CR_TASK_MT);
  return t;
}

static void pushtask(lua_State *L, cr_task *t) {
  cr_loop_pushanchored(L, t->loop, CR_LUV_TASKS, t->ref);
}

/* {=================================================================
** Error objects
** ================================================================== */

/* Push a Cancelled error carrying the message at 'msgidx' (0: none). */
int cr_pushcancelled(lua_State *L, int msgidx) {
  if (msgidx != 0) msgidx = lua_absindex(L, msgidx);
  lua_createtable(L, 0, 1);
  if (msgidx != 0) {
    lua_pushvalue(L, msgidx);
    lua_setfield(L, -2, "msg");
  }
  luaL_setmetatable(L, CR_CANCELLED_MT);
  return 1;
}

static int auxfield(lua_State *L, cr_task *t, int tidx, const char *k);
static void auxtable(lua_State *L, cr_task *t, int tidx);

/* Raise the Cancelled error of 't'. A scope expiring inside a shield is
** delivered through the shield and leaves the task's own pending
** cancellation for the shield's end. */
static int raisecancelled(lua_State *L, cr_task *t) {
  pushtask(L, t);
  auxfield(L, t, lua_gettop(L), "msg");
  cr_pushcancelled(L, -1);
  return lua_error(L);
}

static int cancelled_tostring(lua_State *L) {
  if (lua_getfield(L, 1, "msg") == LUA_TNIL)
    lua_pushliteral(L, "cancelled");
  else
    lua_pushfstring(L, "cancelled: %s", luaL_tolstring(L, -1, NULL));
  return 1;
}

static int timeout_tostring(lua_State *L) {
  lua_getfield(L, 1, "seconds");
  lua_pushfstring(L, "timed out after %s s", luaL_tolstring(L, -1, NULL));
  return 1;
}

/* Is the value at 'idx' a table with metatable 'mt'? */
static int ismt(lua_State *L, int idx, const char *mt) {
  int r = 0;
  if (lua_type(L, idx) == LUA_TTABLE && lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, mt);
    r = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  return r;
}

static int is_a(lua_State *L, const char *mt) {
  lua_pushboolean(L, ismt(L, 1, mt));
  return 1;
}

static int task_is_cancelled(lua_State *L) {
  return is_a(L, CR_CANCELLED_MT);
}

static int task_is_task(lua_State *L) {
  lua_pushboolean(L, cr_testobj(L, 1, cr_task, CR_TASK_MAGIC) != NULL);
  return 1;
}

static int task_is_timeout(lua_State *L) {
  return is_a(L, CR_TIMEOUT_MT);
}

/* core.cancelled_error([msg]): a new Cancelled error object. */
static int task_cancelled_error(lua_State *L) {
  return cr_pushcancelled(L, lua_isnoneornil(L, 1) ? 0 : 1);
}

/* core.timeout_error(seconds): a new Timeout error object. */
static int task_timeout_error(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "seconds");
  luaL_setmetatable(L, CR_TIMEOUT_MT);
  return 1;
}

/* }================================================================= */


/* {=================================================================
** Parking and waking
** ================================================================== */

/* The running task, checked to be able to suspend; raises otherwise. */
cr_task *cr_task_enter(lua_State *L, cr_loop *lp, const char *fname) {
  cr_task *t = lp->current;
  if (t == NULL)
    luaL_error(L, "%s: must be called from inside a task (start one with "
                  "corun.run or corun.spawn)", fname);
  if (t->co != L)
    luaL_error(L, "%s: must be called from inside a task, not from a "
                  "coroutine the task created", fname);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s: cannot suspend here (inside a metamethod or a C "
                  "function that calls Lua)", fname);
  return t;
}

/* Park the running task on 'waitlist' (may be NULL) with an optional
** deadline (timeout < 0: none), then yield to the loop. Use as
** 'return cr_task_park(...)'. A pending cancellation is raised instead. */
/* Is a cancellation to be raised at the next suspension? */
int cr_task_cancelnow(cr_task *t) {
  return !t->shielded && (t->scope_cancel || (t->cancel_pending && !t->ushield));
}

/* Raise the cancellation cr_task_cancelnow found, consuming it. */
static int raisepending(lua_State *L, cr_task *t) {
  if (t->scope_cancel) t->scope_cancel = 0;
  else t->cancel_pending = 0;
  return raisecancelled(L, t);
}

int cr_task_park(lua_State *L, cr_task *t, cr_list *waitlist, double timeout,
                 lua_KContext ctx, lua_KFunction k) {
  if (cr_task_cancelnow(t)) return raisepending(L, t);
  assert(t == t->loop->current && !cr_list_linked(&t->wnode) &&
         (waitlist == NULL || t->wg == NULL));
  t->outcome = CR_OK;
  if (timeout >= 0 && cr_loop_arm(t->loop, &t->timer, timeout) != 0)
    return cr_nomem(L);
  if (waitlist != NULL) cr_list_push(waitlist, &t->wnode);
  t->yielded = 1;
  return lua_yieldk(L, 0, ctx, k);
}

/* Raise a pending cancellation now (before linking anything). */
void cr_task_checkcancel(lua_State *L, cr_task *t) {
  if (cr_task_cancelnow(t)) raisepending(L, t);
}

void cr_task_wake(cr_task *t, int outcome) {
  assert(t->status == CR_PENDING && !cr_list_linked(&t->node));
  cr_list_remove(&t->wnode);
  if (t->timer.slot >= 0) cr_loop_disarm(t->loop, &t->timer);
  t->outcome = (unsigned char)outcome;
  if (outcome == CR_CANCELLED) t->cancel_pending = 0;
  cr_loop_ready(t->loop, (cr_entry *)t);
}

/* The deadline of a parked task passed: a sleep is over, a wait timed out. */
void cr_task_timer(cr_loop *lp, cr_task *t) {
  int waiting = cr_list_linked(&t->wnode) || t->wg != NULL;
  if (!cr_wait_giveup(t)) return;  /* a completion is posted */
  t->outcome = waiting ? CR_TIMEOUT : CR_OK;
  cr_loop_ready(lp, (cr_entry *)t);
}

/* For continuations: the outcome, raising Cancelled if that is it. */
int cr_task_outcome(lua_State *L, cr_task *t) {
  if (t->outcome == CR_CANCELLED) {
    t->outcome = CR_OK;
    if (!t->ushield) t->cancel_pending = 0;
    return raisecancelled(L, t);
  }
  return t->outcome;
}

static int parked(cr_task *t) {
  return cr_list_linked(&t->wnode) || t->timer.slot >= 0 || t->wg != NULL;
}

/* Request cancellation (L may be NULL from a signal: then no message).
** A message replaces the one of an earlier request, so the Cancelled raised
** next carries the latest. Returns 0 when the task has already finished. */
int cr_task_cancel(lua_State *L, cr_task *t, int msgidx) {
  if (t->status != CR_PENDING) return 0;
  t->ncancel++;
  if (L != NULL && msgidx != 0) {  /* the latest message wins */
    msgidx = lua_absindex(L, msgidx);
    pushtask(L, t);
    auxtable(L, t, lua_gettop(L));
    lua_pushvalue(L, msgidx);
    lua_setfield(L, -2, "msg");
    lua_pop(L, 2);
  }
  if (parked(t) && !t->shielded && !t->ushield && t->loop->current != t &&
      cr_wait_giveup(t))
    cr_task_wake(t, CR_CANCELLED);
  else  /* running, ready, or a peer's completion is already posted */
    t->cancel_pending = 1;
  return 1;
}

/* }================================================================= */


/* {=================================================================
** Spawning, running and finishing
** ================================================================== */

/* A task spawned by 'parent' starts in its context (corun.context_var):
** the same context table, which is never changed, only replaced. Tasks
** whose parent has no context pay one flag test. */
static void inherit(lua_State *L, cr_task *parent, cr_task *t, int tidx) {
  int top = lua_gettop(L);
  pushtask(L, parent);
  auxfield(L, parent, top + 1, "ctx");
  auxtable(L, t, tidx);
  lua_pushvalue(L, top + 2);
  lua_setfield(L, -2, "ctx");
  t->has_ctx = 1;
  lua_settop(L, top);
}

cr_task *cr_task_spawn(lua_State *L, cr_loop *lp, int fidx, int nargs) {
  cr_task *t;
  lua_State *co;
  cr_checkcallable(L, fidx);
  t = (cr_task *)lua_newuserdatauv(L, sizeof *t, CR_TUV_N);
  memset(t, 0, sizeof *t);
  t->kind = CR_SCHED_TASK;
  cr_list_init(&t->node);
  cr_list_init(&t->wnode);
  cr_list_init(&t->joiners);
  t->timer.slot = -1;
  t->ref = LUA_NOREF;
  t->loop = lp;
  t->status = CR_DONE;  /* closed-first: inert until fully built */
  t->magic = CR_TASK_MAGIC;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->task_mt);  /* cr_task_mtkey's */
  lua_setmetatable(L, -2);
  co = lua_newthread(L);
  lua_setiuservalue(L, -2, CR_TUV_CO);
  if (!lua_checkstack(co, nargs + 1))
    luaL_error(L, "%s: too many arguments", cr_fname(L));
  lua_pushvalue(L, fidx);
  lua_xmove(L, co, 1);
  for (int i = 1; i <= nargs; i++) {
    lua_pushvalue(L, fidx + i);
    lua_xmove(L, co, 1);
  }
  t->ref = cr_loop_anchor(L, lp, CR_LUV_TASKS, -1);
  t->co = co;
  t->nargs = nargs;
  t->id = lp->next_id++;
  t->status = CR_PENDING;
  lp->ntasks++;
  lp->nspawned++;
  if (lp->current != NULL) {  /* the parent: the aux value (see below) */
    pushtask(L, lp->current);
    lua_setiuservalue(L, -2, CR_TUV_VALUE);
    if (lp->current->has_ctx) inherit(L, lp->current, t, lua_gettop(L));
  }
  cr_loop_ready(lp, (cr_entry *)t);
  return t;
}

/* {=================================================================
** The aux uservalue: nil, the parent (a task), the name (a string), one
** done callback (not a table, never a task), or an aux table {parent =,
** name =, [1..n] = done callbacks}. Most tasks have a parent and neither a
** name nor a callback, so this costs one slot. A task forgets its parent
** when it finishes (finished tasks keep no chain of ancestors alive).
** ================================================================== */

static int istask(lua_State *L, int idx) {
  return cr_testobj(L, idx, cr_task, CR_TASK_MAGIC) != NULL;
}

static int isauxtable(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  if (!lua_getmetatable(L, idx)) return 1;
  lua_pop(L, 1);
  return 0;  /* a callable table used as a callback */
}

static int auxslot(cr_task *t) {
  return t->status == CR_PENDING ? CR_TUV_VALUE : CR_TUV_CO;
}

/* Push the aux table of task 't' (userdata at 'tidx'), converting the aux
** value into one. */
static void auxtable(lua_State *L, cr_task *t, int tidx) {
  int aux;
  lua_getiuservalue(L, tidx, auxslot(t));
  aux = lua_gettop(L);
  if (isauxtable(L, aux)) return;
  lua_createtable(L, 1, 1);
  if (lua_type(L, aux) == LUA_TSTRING) {
    lua_pushvalue(L, aux);
    lua_setfield(L, -2, "name");
  }
  else if (istask(L, aux)) {
    lua_pushvalue(L, aux);
    lua_setfield(L, -2, "parent");
  }
  else if (!lua_isnil(L, aux)) {
    lua_pushvalue(L, aux);
    lua_rawseti(L, -2, 1);
  }
  lua_replace(L, aux);
  lua_pushvalue(L, aux);
  lua_setiuservalue(L, tidx, auxslot(t));
}

/* Push field 'k' of the aux table of 't', or nil. */
static int auxfield(lua_State *L, cr_task *t, int tidx, const char *k) {
  int top = lua_gettop(L);
  lua_getiuservalue(L, tidx, auxslot(t));
  if (isauxtable(L, top + 1) && lua_getfield(L, top + 1, k) != LUA_TNIL) {
    lua_remove(L, top + 1);
    return lua_type(L, -1);
  }
  lua_settop(L, top);
  lua_pushnil(L);
  return LUA_TNIL;
}

/* Push the parent of task 't' (userdata at 'tidx'): the task that spawned
** it while 't' is alive, else nil. */
static void pushparent(lua_State *L, cr_task *t, int tidx) {
  int top = lua_gettop(L);
  if (t->status == CR_PENDING) {
    lua_getiuservalue(L, tidx, CR_TUV_VALUE);
    if (istask(L, top + 1)) return;
    lua_settop(L, top);
    if (auxfield(L, t, tidx, "parent") != LUA_TNIL) return;
    lua_settop(L, top);
  }
  lua_pushnil(L);
}

static void pushname(lua_State *L, cr_task *t, int tidx) {
  int top = lua_gettop(L);
  if (lua_getiuservalue(L, tidx, auxslot(t)) == LUA_TSTRING) return;
  lua_settop(L, top);
  if (auxfield(L, t, tidx, "name") == LUA_TSTRING) return;
  lua_pop(L, 1);
  lua_pushfstring(L, "task-%d", (int)t->id);
}

/* Push the name of live task 't'. */
void cr_task_pushname(lua_State *L, cr_task *t) {
  pushtask(L, t);
  pushname(L, t, lua_gettop(L));
  lua_remove(L, -2);
}

/* Set the name of task 'tidx' to the string on top (popped). */
void cr_task_setname(lua_State *L, int tidx) {
  cr_task *t = (cr_task *)lua_touserdata(L, tidx);
  int slot = auxslot(t);
  tidx = lua_absindex(L, tidx);
  if (lua_getiuservalue(L, tidx, slot) <= LUA_TNIL ||
      lua_type(L, -1) == LUA_TSTRING) {
    lua_pop(L, 1);
    lua_setiuservalue(L, tidx, slot);
    return;
  }
  lua_pop(L, 1);
  auxtable(L, t, tidx);
  lua_insert(L, -2);
  lua_setfield(L, -2, "name");
  lua_pop(L, 1);
}

/* Add the done callback on top (popped) to unfinished task 'tidx'. */
static void adddonecb(lua_State *L, cr_task *t, int tidx) {
  int type = lua_getiuservalue(L, tidx, CR_TUV_VALUE);
  lua_pop(L, 1);
  if (type == LUA_TNIL && !lua_istable(L, -1)) {
    lua_setiuservalue(L, tidx, CR_TUV_VALUE);
    return;
  }
  auxtable(L, t, tidx);
  lua_insert(L, -2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  lua_pop(L, 1);
}

/* A task is finishing: push its done callbacks (nil, one, or the aux
** table, whose list part is theirs) and then what of the aux value stays:
** the name, or with a traceback (not nil) a table {name =, traceback =}.
** The parent is dropped. */
static void splitaux(lua_State *L, int tidx, int tb) {
  int type = lua_getiuservalue(L, tidx, CR_TUV_VALUE);
  if (type == LUA_TSTRING) {
    lua_pushnil(L);
    lua_insert(L, -2);
  }
  else if (isauxtable(L, -1))
    lua_getfield(L, -1, "name");
  else {
    if (type == LUA_TUSERDATA && istask(L, -1)) {  /* only the parent */
      lua_pop(L, 1);
      lua_pushnil(L);
    }
    lua_pushnil(L);
  }
  if (!lua_isnil(L, tb)) {
    lua_createtable(L, 0, 2);
    lua_insert(L, -2);
    lua_setfield(L, -2, "name");
    lua_pushvalue(L, tb);
    lua_setfield(L, -2, "traceback");
  }
}

/* }================================================================= */

/* Schedule the done callbacks at 'cbidx' (one, or a list) for task 'tidx'. */
static void notify(lua_State *L, cr_loop *lp, int cbidx, int tidx) {
  if (lua_type(L, cbidx) == LUA_TNIL) return;  /* most tasks: no callback */
  if (isauxtable(L, cbidx)) {  /* a list (a callable table is one callback) */
    lua_Integer i, n = luaL_len(L, cbidx);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, cbidx, i);
      notify(L, lp, lua_gettop(L), tidx);
      lua_pop(L, 1);
    }
  }
  else if (cr_queue_test(L, cbidx))
    cr_queue_offer(L, cbidx, tidx);
  else {
    lua_pushvalue(L, cbidx);
    lua_pushvalue(L, tidx);
    cr_loop_callback(L, lp, lua_gettop(L) - 1, 1, -1);
    lua_pop(L, 3);
  }
}

/* The task at 'tidx' has ended with 'status'. On top of L: its value
** (results or error object), then nil or the traceback of a non-string
** error. Both are popped. */
static void finish(lua_State *L, cr_loop *lp, cr_task *t, int tidx,
                   int status) {
  int tb = lua_gettop(L), value = tb - 1, cbs;
  splitaux(L, tidx, tb);                      /* cbs, aux */
  cbs = lua_gettop(L) - 1;
  lua_setiuservalue(L, tidx, CR_TUV_CO);      /* drops the coroutine */
  lua_pushvalue(L, value);
  lua_setiuservalue(L, tidx, CR_TUV_VALUE);
  t->co = NULL;
  t->status = (unsigned char)status;
  cr_loop_unanchor(L, lp, CR_LUV_TASKS, t->ref);
  t->ref = LUA_NOREF;
  lp->ntasks--;
  if (status == CR_FAILED) {  /* unretrieved until joined or reported */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &failed_mtkey);  /* with __gc */
    lua_setmetatable(L, tidx);
    lp->nfailed++;
    cr_loop_pushanchors(L, CR_LUV_FAILED);
    lua_pushlightuserdata(L, t);
    lua_pushvalue(L, tidx);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  cr_wait_wakeall(&t->joiners, CR_OK);
  if (status != CR_DONE && !cr_list_empty(&lp->gathers))
    cr_gather_failed(lp, t);
  notify(L, lp, cbs, tidx);
  lua_settop(L, value - 1);
}

/* Move the 'nres' results of a finished coroutine to L as one value: nil,
** the single result, or a list of them. */
static void pushresults(lua_State *L, cr_task *t, int nres) {
  t->nres = nres;
  if (nres == 0)
    lua_pushnil(L);
  else if (nres == 1)
    lua_xmove(t->co, L, 1);
  else {
    int i;
    lua_createtable(L, nres, 0);
    for (i = nres; i >= 1; i--) {
      lua_xmove(t->co, L, 1);
      lua_rawseti(L, -2, i);
    }
  }
}

/* Close the pending to-be-closed variables of the coroutine of 't' (which
** ended in error or is suspended for good), as the task: corun.current()
** is the task inside the __close handlers. Lua does not let them yield. */
static int closethread(cr_task *t) {
  cr_loop *lp = t->loop;
  cr_task *was = lp->current;
  int status;
  lp->current = t;
  status = lua_resetthread(t->co);
  lp->current = was;
  return status;
}

/* The coroutine of 't' ended with an error (on top of co): decide failed
** or cancelled, keep the traceback, close its pending <close> variables.
** Pushes what finish() expects and returns the final status. A __close
** handler that fails replaces the error, as in Lua. */
static int failure(lua_State *L, cr_task *t) {
  lua_State *co = t->co;
  int status = CR_FAILED, err;
  lua_xmove(co, L, 1);
  err = lua_gettop(L);
  lua_pushvalue(L, err);  /* the original, to spot a new error */
  if (ismt(L, err, CR_CANCELLED_MT)) {
    status = CR_CANCELLED_ST;
    lua_pushnil(L);
  }
  else if (lua_type(L, err) == LUA_TSTRING) {
    luaL_traceback(L, co, lua_tostring(L, err), 0);
    lua_replace(L, err);
    lua_pushnil(L);
  }
  else
    luaL_traceback(L, co, NULL, 0);
  if (closethread(t) != LUA_OK && lua_gettop(co) > 0) {
    lua_xmove(co, L, 1);
    if (!lua_rawequal(L, -1, err + 1)) {  /* a __close handler failed */
      lua_replace(L, err);
      status = CR_FAILED;
    }
    else
      lua_pop(L, 1);
  }
  lua_remove(L, err + 1);
  return status;
}

void cr_task_dispatch(lua_State *L, cr_loop *lp, cr_task *t) {
  int status, nres, tidx;
  if (!t->started) {
    if (t->cancel_pending) {  /* cancelled before it ever ran */
      pushtask(L, t);
      tidx = lua_gettop(L);
      auxfield(L, t, tidx, "msg");
      cr_pushcancelled(L, -1);
      lua_remove(L, -2);
      lua_pushnil(L);
      finish(L, lp, t, tidx, CR_CANCELLED_ST);
      lua_settop(L, tidx - 1);
      return;
    }
    t->started = 1;
  }
  lp->current = t;
  t->yielded = 0;
  lp->nswitches++;
  if (cr_slow_on) cr_inspect_step_begin(lp, t);
  status = lua_resume(t->co, L, t->nargs, &nres);
  if (cr_slow_on) cr_inspect_step_end(lp, t);
  lp->current = NULL;
  t->nargs = 0;
  if (status == LUA_YIELD) {
    if (!t->yielded) {  /* a bare coroutine.yield(): just a turn */
      lua_pop(t->co, nres);
      cr_loop_ready(lp, (cr_entry *)t);
    }
    return;
  }
  pushtask(L, t);
  tidx = lua_gettop(L);
  if (status == LUA_OK) {
    pushresults(L, t, nres);
    lua_pushnil(L);
    finish(L, lp, t, tidx, CR_DONE);
  }
  else
    finish(L, lp, t, tidx, failure(L, t));
  lua_settop(L, tidx - 1);
}

/* }================================================================= */

/* {=================================================================
** Results, reporting, teardown
** ================================================================== */

/* The error of failed task 't' has been seen: no report for it. */
void cr_task_retrieved(lua_State *L, cr_task *t) {
  if (t->retrieved) return;
  t->retrieved = 1;
  cr_loop_pushanchors(L, CR_LUV_FAILED);
  lua_pushlightuserdata(L, t);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* Push the results of finished task 't' (userdata at 'tidx'), or raise its
** error (which then counts as retrieved). */
int cr_task_pushresults(lua_State *L, cr_task *t, int tidx) {
  int i;
  tidx = lua_absindex(L, tidx);
  switch (t->status) {
    case CR_PENDING:
      return luaL_error(L, "result: the task has not finished");
    case CR_DONE:
      lua_getiuservalue(L, tidx, CR_TUV_VALUE);
      if (t->nres <= 1) return t->nres;
      luaL_checkstack(L, t->nres, "too many results");
      for (i = 1; i <= t->nres; i++) lua_rawgeti(L, -i, i);
      return t->nres;
    case CR_FAILED:
      cr_task_retrieved(L, t);
      /* FALLTHROUGH */
    default:
      lua_getiuservalue(L, tidx, CR_TUV_VALUE);
      return lua_error(L);
  }
}

/* Print the failure of 't' (userdata at 'tidx') to stderr, once. */
static void report(lua_State *L, cr_task *t, int tidx) {
  int top = lua_gettop(L);
  if (t->retrieved) return;
  pushname(L, t, tidx);
  lua_getiuservalue(L, tidx, CR_TUV_VALUE);
  cr_describe(L, -1);  /* never raises: a report is never lost */
  fprintf(stderr, "corun: task '%s' failed: %s\n", lua_tostring(L, top + 1),
          lua_tostring(L, -1));
  if (auxfield(L, t, tidx, "traceback") == LUA_TSTRING)
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
  fflush(stderr);
  lua_settop(L, top);
  cr_task_retrieved(L, t);
  t->loop->failures++;
}

/* Report every failed task whose error nobody retrieved. */
void cr_task_report(lua_State *L, cr_loop *lp) {
  int tab;
  (void)lp;
  cr_loop_pushanchors(L, CR_LUV_FAILED);
  tab = lua_gettop(L);
  for (;;) {
    lua_pushnil(L);
    if (lua_next(L, tab) == 0) break;
    report(L, (cr_task *)lua_touserdata(L, -1), lua_gettop(L));
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

/* Push "task 'name' failed: err" for one failed task whose error nobody
** retrieved and return 1, or return 0 when there is none. */
int cr_task_pushfirstfailure(lua_State *L, cr_loop *lp) {
  int top = lua_gettop(L);
  cr_task *t;
  (void)lp;
  cr_loop_pushanchors(L, CR_LUV_FAILED);
  lua_pushnil(L);
  if (lua_next(L, top + 1) == 0) {
    lua_settop(L, top);
    return 0;
  }
  t = (cr_task *)lua_touserdata(L, -1);
  pushname(L, t, top + 3);
  lua_getiuservalue(L, top + 3, CR_TUV_VALUE);
  luaL_tolstring(L, -1, NULL);
  lua_pushfstring(L, "task '%s' failed: %s", lua_tostring(L, top + 4),
                  lua_tostring(L, -1));
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 1;
}

static int task_gc(lua_State *L) {
  cr_task *t = (cr_task *)lua_touserdata(L, 1);
  if (t->status == CR_FAILED) report(L, t, 1);
  return 0;
}

static int byid(const void *a, const void *b) {
  unsigned x = (*(cr_task *const *)a)->id, y = (*(cr_task *const *)b)->id;
  return (x > y) - (x < y);
}

/* Push a list of the live tasks, ordered by id; returns its length. */
static int pushlive(lua_State *L, cr_loop *lp) {
  int i, n = 0, cap = lp->ntasks;
  cr_task **v = (cr_task **)lua_newuserdatauv(L, (cap + 1) * sizeof *v, 0);
  cr_loop_pushanchors(L, CR_LUV_TASKS);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    cr_task *t = cr_testobj(L, -1, cr_task, CR_TASK_MAGIC);
    if (t != NULL && n < cap) v[n++] = t;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  qsort(v, n, sizeof *v, byid);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    pushtask(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_remove(L, -2);
  return n;
}

/* Cancel every live task and run the loop so their cleanup runs; then
** close any that is still blocked (it caught Cancelled and waits forever,
** or the loop was stopped again). */
void cr_task_finish_all(lua_State *L, cr_loop *lp) {
  int i, n, list;
  if (lp->ntasks == 0) return;
  n = pushlive(L, lp);
  list = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    cr_task_cancel(L, (cr_task *)lua_touserdata(L, -1), 0);
    lua_pop(L, 1);
  }
  cr_handle_drop_all(L, lp);
  lp->draining = 1;
  cr_loop_run(L, lp, 0, NULL);
  lp->draining = 0;
  lua_pop(L, 1);
  if (lp->ntasks == 0) return;
  n = pushlive(L, lp);
  list = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    cr_task *t;
    lua_rawgeti(L, list, i);
    t = (cr_task *)lua_touserdata(L, -1);
    cr_list_remove(&t->node);
    cr_list_remove(&t->wnode);
    cr_loop_disarm(lp, &t->timer);
    if (t->wg != NULL) cr_wait_abandon(t);
    if (t->started) closethread(t);
    cr_pushcancelled(L, 0);
    lua_pushnil(L);
    finish(L, lp, t, lua_gettop(L) - 2, CR_CANCELLED_ST);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* }================================================================= */


/* {=================================================================
** The Lua-facing functions
** ================================================================== */

static int task_spawn(lua_State *L) {
  cr_task_spawn(L, cr_loop_get(L), 1, lua_gettop(L) - 1);
  return 1;
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  cr_task *t = cr_loop_get(L)->current;
  (void)status; (void)ctx;
  if (cr_task_cancelnow(t)) return raisepending(L, t);
  cr_task_outcome(L, t);
  return 0;
}

static int task_sleep(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  double sec = luaL_checknumber(L, 1);
  cr_task *t;
  luaL_argcheck(L, sec >= 0 && !isnan(sec), 1, "must be a number >= 0");
  t = cr_task_enter(L, lp, "sleep");
  if (sec > 0) return cr_task_park(L, t, NULL, sec, 0, sleep_k);
  if (cr_task_cancelnow(t)) return raisepending(L, t);
  cr_loop_ready(lp, (cr_entry *)t);
  return cr_task_park(L, t, NULL, -1, 0, sleep_k);
}

static int task_current(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  if (lp->current == NULL || lp->current->co != L)
    lua_pushnil(L);
  else
    pushtask(L, lp->current);
  return 1;
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  cr_task *me = cr_loop_get(L)->current;
  (void)status; (void)ctx;
  if (cr_task_cancelnow(me)) return raisepending(L, me);
  if (cr_task_outcome(L, me) == CR_TIMEOUT) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return cr_task_pushresults(L, checktask(L, 1), 1);
}

static int task_join(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  cr_task *t = checktask(L, 1), *me;
  double timeout = cr_opttimeout(L, 2);
  if (t->status != CR_PENDING) return cr_task_pushresults(L, t, 1);
  me = cr_task_enter(L, lp, "join");
  if (me == t) return luaL_error(L, "join: a task cannot join itself");
  lua_settop(L, 1);
  return cr_wait_on(L, me, &t->joiners, timeout, 0, join_k);
}

static int task_result(lua_State *L) {
  return cr_task_pushresults(L, checktask(L, 1), 1);
}

static const char *const statusnames[] = {
  "pending", "done", "failed", "cancelled"
};

static int task_status(lua_State *L) {
  cr_task *t = checktask(L, 1);
  if (t->status == CR_PENDING && t->loop->current == t)
    lua_pushliteral(L, "running");
  else
    lua_pushstring(L, statusnames[t->status]);
  return 1;
}

static int task_done(lua_State *L) {
  lua_pushboolean(L, checktask(L, 1)->status != CR_PENDING);
  return 1;
}

static int task_cancel(lua_State *L) {
  cr_task *t = checktask(L, 1);
  lua_pushboolean(L, cr_task_cancel(L, t, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

/* core.uncancel(task): withdraw one cancel request (corun.timeout uses it
** when the request was its own); returns how many remain. */
static int task_uncancel(lua_State *L) {
  cr_task *t = checktask(L, 1);
  t->scope_cancel = 0;  /* the scope that asked has ended */
  if (t->ncancel > 0 && --t->ncancel == 0) t->cancel_pending = 0;
  lua_pushinteger(L, t->ncancel);
  return 1;
}

/* core.shield(task, on, [raise]): enter (true) or leave (false)
** corun.shield. While shielded, cancel requests wait; leaving raises one
** that came meanwhile when the task is the running one and 'raise' is not
** false (else its next suspension does). */
static int task_shield(lua_State *L) {
  cr_task *t = checktask(L, 1);
  t->ushield = lua_toboolean(L, 2);
  if (!t->ushield && t->cancel_pending && t->loop->current == t &&
      (lua_isnoneornil(L, 3) || lua_toboolean(L, 3)))
    return raisepending(L, t);
  return 0;
}

/* core.scope_cancel(task, mode): the cancel request of a scope (corun.timeout,
** move_on_after). mode "count": one more request (withdrawn with uncancel)
** whose delivery waits for a shield opened inside the scope to end;
** "deliver": deliver such a request now; "both" (the default): count and
** deliver. Delivery goes through a shield opened outside the scope and
** leaves the task's own pending cancellation for the shield's end. */
static int task_scope_cancel(lua_State *L) {
  static const char *const modes[] = {"both", "count", "deliver", NULL};
  cr_task *t = checktask(L, 1);
  int mode = luaL_checkoption(L, 2, "both", modes);
  if (t->status != CR_PENDING) return 0;
  if (mode != 2) t->ncancel++;
  if (mode == 1) return 0;
  if (parked(t) && !t->shielded && t->loop->current != t &&
      cr_wait_giveup(t)) {
    unsigned keep = t->cancel_pending;
    cr_task_wake(t, CR_CANCELLED);
    t->cancel_pending = keep;
  }
  else
    t->scope_cancel = 1;
  return 0;
}

/* core.context(task) -> its context table (corun.context_var), or nil. */
static int task_context(lua_State *L) {
  cr_task *t = checktask(L, 1);
  if (!t->has_ctx) return 0;
  auxfield(L, t, 1, "ctx");
  return 1;
}

/* core.set_context(task, ctx): the task's context is now table ctx. */
static int task_set_context(lua_State *L) {
  cr_task *t = checktask(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  auxtable(L, t, 1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "ctx");
  t->has_ctx = 1;
  return 0;
}

/* Add a done callback (function or queue, at 2) to task 1. */
static int adddone(lua_State *L, cr_task *t) {
  lua_settop(L, 2);
  if (t->status != CR_PENDING) {
    notify(L, cr_loop_get(L), 2, 1);
    return 0;
  }
  adddonecb(L, t, 1);
  return 0;
}

/* core.notify(task, queue): put the task in the queue when it finishes. */
static int task_notify(lua_State *L) {
  if (!cr_queue_test(L, 2)) luaL_typeerror(L, 2, CR_QUEUE_MT);
  cr_task_notify(L, 1, 2);
  return 0;
}

static int task_on_done(lua_State *L) {
  cr_task *t = checktask(L, 1);
  cr_checkcallable(L, 2);
  return adddone(L, t);
}

/* Make the task at 'tidx' put itself into the queue at 'qidx' when it
** finishes (at once if it has). */
void cr_task_notify(lua_State *L, int tidx, int qidx) {
  cr_task *t = checktask(L, tidx);
  if (t->status != CR_PENDING)
    cr_queue_offer(L, qidx, tidx);
  else {
    lua_pushvalue(L, qidx);
    adddonecb(L, t, tidx);
  }
}

static int task_index(lua_State *L) {
  cr_task *t = checktask(L, 1);
  const char *k = lua_tostring(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return 1;
  if (k != NULL && strcmp(k, "name") == 0) {
    pushname(L, t, 1);
    return 1;
  }
  if (k != NULL && strcmp(k, "id") == 0) {
    lua_pushinteger(L, t->id);
    return 1;
  }
  if (k != NULL && strcmp(k, "parent") == 0) {
    pushparent(L, t, 1);
    return 1;
  }
  return 0;
}

static int task_newindex(lua_State *L) {
  checktask(L, 1);
  luaL_argcheck(L, lua_type(L, 2) == LUA_TSTRING &&
                   strcmp(lua_tostring(L, 2), "name") == 0, 2,
                "only 'name' can be set on a task");
  luaL_argcheck(L, lua_type(L, 3) == LUA_TSTRING, 3, "name must be a string");
  lua_settop(L, 3);
  cr_task_setname(L, 1);
  return 0;
}

static int task_tostring(lua_State *L) {
  cr_task *t = checktask(L, 1);
  pushname(L, t, 1);
  task_status(L);
  lua_pushfstring(L, "corun.task '%s' (%s)", lua_tostring(L, -2),
                  lua_tostring(L, -1));
  return 1;
}

/* core.failed(task): finished with an error or cancelled. */
static int task_failed(lua_State *L) {
  cr_task *t = checktask(L, 1);
  lua_pushboolean(L, t->status == CR_FAILED || t->status == CR_CANCELLED_ST);
  return 1;
}

/* core.firsts(list, n): for finished tasks list[1..n], a list of each one's
** first result, or its error object (which then counts as retrieved). */
static int task_firsts(lua_State *L) {
  lua_Integer i, n = luaL_checkinteger(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    cr_task *t;
    lua_rawgeti(L, 1, i);
    t = checktask(L, -1);
    luaL_argcheck(L, t->status != CR_PENDING, 1, "a task has not finished");
    if (t->status == CR_FAILED) cr_task_retrieved(L, t);
    lua_getiuservalue(L, -1, CR_TUV_VALUE);
    if (t->status == CR_DONE && t->nres > 1) {
      lua_rawgeti(L, -1, 1);
      lua_remove(L, -2);
    }
    lua_rawseti(L, 3, i);
    lua_pop(L, 1);
  }
  return 1;
}

static int task_tasks(lua_State *L) {
  pushlive(L, cr_loop_get(L));
  return 1;
}

/* Push where blocked task 't' waits: the function it is suspended in and
** the object that function was called on (its first argument), as 0 to 2
** strings; returns how many. */
static int pushwait(lua_State *L, cr_task *t) {
  lua_Debug ar;
  const char *name;
  int n = 0;
  if (!lua_getstack(t->co, 0, &ar) || !lua_getinfo(t->co, "Sn", &ar))
    return 0;
  if (ar.name != NULL) {
    lua_pushfstring(L, " waiting in '%s'", ar.name);
    n++;
  }
  if (*ar.what == 'C' && (name = lua_getlocal(t->co, &ar, 1)) != NULL) {
    lua_xmove(t->co, L, 1);
    luaL_tolstring(L, -1, NULL);
    lua_remove(L, -2);
    lua_pushfstring(L, " on %s", lua_tostring(L, -1));
    lua_remove(L, -2);
    n++;
  }
  return n;
}

/* The live tasks list[1..n] (in id order) as a tree, each under the task
** that spawned it: a node per position, node 0 holding the roots (tasks
** with no parent, or whose parent has finished). Children are in id
** order. Pushes the nodes' userdata. */
typedef struct cr_tnode { int parent, child, next; } cr_tnode;

static cr_tnode *pushtree(lua_State *L, int list, int n) {
  cr_tnode *v = (cr_tnode *)lua_newuserdatauv(L, (n + 1) * sizeof *v, 0);
  int i, pos = lua_gettop(L) + 1;
  memset(v, 0, (n + 1) * sizeof *v);
  lua_createtable(L, 0, n);  /* pos: task -> its position */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    lua_pushinteger(L, i);
    lua_rawset(L, pos);
  }
  for (i = n; i >= 1; i--) {  /* backwards: each is put first */
    int p = 0;
    lua_rawgeti(L, list, i);
    pushparent(L, (cr_task *)lua_touserdata(L, -1), lua_gettop(L));
    if (lua_rawget(L, pos) == LUA_TNUMBER) p = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (p >= i) p = 0;  /* cannot be (parents are older): a root */
    v[i].parent = p;
    v[i].next = v[p].child;
    v[p].child = i;
  }
  lua_pop(L, 1);
  return v;
}

/* Indent every line of the string on top by 2 * depth spaces. */
static void indent(lua_State *L, int depth) {
  static const char spaces[] = "                                ";
  size_t len, w = (size_t)(2 * depth);
  const char *s;
  luaL_Buffer b;
  if (w == 0) return;
  if (w > sizeof spaces - 1) w = sizeof spaces - 1;
  s = lua_tolstring(L, -1, &len);
  luaL_buffinit(L, &b);
  while (len > 0) {
    const char *nl = memchr(s, '\n', len);
    size_t k = nl != NULL ? (size_t)(nl - s) + 1 : len;
    if (k > 1 || *s != '\n') luaL_addlstring(&b, spaces, w);
    luaL_addlstring(&b, s, k);
    s += k;
    len -= k;
  }
  luaL_pushresult(&b);
  lua_remove(L, -2);
}

/* Push the report block of live task 't' (on top, replaced) at 'depth' in
** the tree (see pushreport). */
static void pushblock(lua_State *L, cr_task *t, int blocked, int depth) {
  int tidx = lua_gettop(L), base = tidx;
  if (blocked) lua_pushliteral(L, "\n");
  lua_pushcfunction(L, task_tostring);
  lua_pushvalue(L, tidx);
  lua_call(L, 1, 1);
  if (t->started && t->co != NULL && blocked) pushwait(L, t);
  if (depth == 0) {  /* a root: say so when its parent has finished */
    pushparent(L, t, tidx);
    if (lua_isnil(L, -1))
      lua_pop(L, 1);
    else {
      lua_pushliteral(L, ", spawned by ");
      lua_pushcfunction(L, task_tostring);
      lua_rotate(L, -3, -1);
      lua_call(L, 1, 1);
    }
  }
  if (t->started && t->co != NULL) {
    lua_pushliteral(L, "\n");
    luaL_traceback(L, t->co, NULL, 0);
    if (!blocked) lua_pushliteral(L, "\n");
  }
  else if (!blocked)
    lua_pushliteral(L, "\n  (not started)\n");
  lua_concat(L, lua_gettop(L) - base);
  indent(L, depth);
  lua_replace(L, tidx);
}

/* Push a report of every live task, as a tree (each task indented under
** the task that spawned it, children in id order): its name and status,
** then its stack. 'blocked' (a deadlock or a live dump): each line also
** says what the task waits on, and each block starts with a blank line, as
** Go prints its goroutines; else (corun.dump) a task that has not started
** says so. The buffer is only touched with the stack as it left it
** (luaL_addvalue excepted), as luaL_Buffer requires. */
static void pushreport(lua_State *L, cr_loop *lp, int blocked) {
  luaL_Buffer b;
  int n = pushlive(L, lp), list = lua_gettop(L), i, depth = 0;
  cr_tnode *v = pushtree(L, list, n);
  luaL_buffinit(L, &b);
  for (i = v[0].child; i != 0; ) {
    lua_rawgeti(L, list, i);
    pushblock(L, (cr_task *)lua_touserdata(L, -1), blocked, depth);
    luaL_addvalue(&b);
    if (v[i].child != 0) {
      i = v[i].child;
      depth++;
      continue;
    }
    while (i != 0 && v[i].next == 0) {
      i = v[i].parent;
      depth--;
    }
    if (i != 0) i = v[i].next;
  }
  luaL_pushresult(&b);
  lua_replace(L, list);
  lua_settop(L, list);
}

/* Push a report of every live task (a deadlock: all of them are blocked,
** or a live dump): what each waits on, and its stack. */
void cr_task_pushblocked(lua_State *L, cr_loop *lp) {
  pushreport(L, lp, 1);
}

/* core.dump_string(): each live task, its status and where it waits. */
static int task_dump_string(lua_State *L) {
  pushreport(L, cr_loop_get(L), 0);
  return 1;
}

void cr_task_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"spawn", task_spawn},
    {"sleep", task_sleep},
    {"current", task_current},
    {"tasks", task_tasks},
    {"dump_string", task_dump_string},
    {"uncancel", task_uncancel},
    {"shield", task_shield},
    {"context", task_context},
    {"set_context", task_set_context},
    {"scope_cancel", task_scope_cancel},
    {"is_cancelled", task_is_cancelled},
    {"is_timeout", task_is_timeout},
    {"is_task", task_is_task},
    {"failed", task_failed},
    {"notify", task_notify},
    {"firsts", task_firsts},
    {"timeout_error", task_timeout_error},
    {"cancelled_error", task_cancelled_error},
    {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"join", task_join},
    {"result", task_result},
    {"status", task_status},
    {"done", task_done},
    {"cancel", task_cancel},
    {"on_done", task_on_done},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  luaL_newmetatable(L, CR_TASK_MT);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cr_task_mtkey);
  lua_pushvalue(L, -1);
  ((cr_loop *)lua_touserdata(L, loopidx))->task_mt =
      luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, loopidx);
  lua_newtable(L);
  cr_setfuncs(L, methods, loopidx);
  lua_pushcclosure(L, task_index, 2);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, task_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, task_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_newtable(L);  /* the failed tasks' metatable: the same, with __gc */
  lua_pushnil(L);
  while (lua_next(L, -3) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  lua_pushcfunction(L, task_gc);
  lua_setfield(L, -2, "__gc");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &failed_mtkey);
  lua_pop(L, 1);
  luaL_newmetatable(L, CR_CANCELLED_MT);
  lua_pushcfunction(L, cancelled_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newmetatable(L, CR_TIMEOUT_MT);
  lua_pushcfunction(L, timeout_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

/* }================================================================= */


/* {=================================================================
** What other files change in a task: only task.c writes its fields
** ================================================================== */

/* Push the value at 'vidx' of L on the coroutine of parked (or woken, not
** yet resumed) task 't': one more value its continuation gets. A task
** parks in a C function, whose frame has room for LUA_MINSTACK values. */
static void give(lua_State *L, cr_task *t, int vidx) {
  assert(t->status == CR_PENDING && t->loop->current != t);
  if (lua_gettop(t->co) >= LUA_MINSTACK - 1) lua_checkstack(t->co, 1);
  lua_pushvalue(L, vidx);
  lua_xmove(L, t->co, 1);
  t->nargs++;
}

void cr_task_give(lua_State *L, cr_task *t, int vidx) {
  give(L, t, vidx);
}

/* cr_task_give, then wake 't' (CR_OK): a hand-over to a parked task. */
void cr_task_wakewith(lua_State *L, cr_task *t, int vidx) {
  give(L, t, vidx);
  cr_task_wake(t, CR_OK);
}

/* 'n' values were moved onto the coroutine of parked task 't' for it. */
void cr_task_gave(cr_task *t, int n) {
  assert(t->status == CR_PENDING && t->loop->current != t);
  t->nargs += n;
}

/* Cancellation of 't' waits while it is shielded (a condition's wait
** re-acquiring its lock). */
void cr_task_setshielded(cr_task *t, int on) {
  t->shielded = (unsigned char)(on != 0);
}

/* 't' parks on wait group 'g' (waitgroup.c), or no longer (NULL). */
void cr_task_setgroup(cr_task *t, cr_wgroup *g) {
  assert(g == NULL || !cr_list_linked(&t->wnode));
  t->wg = g;
}

/* The outcome of the last wake-up, reset to CR_OK: for continuations that
** handle a cancellation later themselves. */
int cr_task_takeoutcome(cr_task *t) {
  int outcome = t->outcome;
  t->outcome = CR_OK;
  return outcome;
}

/* Raise the Cancelled of running task 't' now, as a cancelled wake-up
** would. */
int cr_task_raisecancel(lua_State *L, cr_task *t) {
  t->outcome = CR_CANCELLED;
  return cr_task_outcome(L, t);
}

/* }================================================================= */
