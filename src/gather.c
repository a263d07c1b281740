/*
** gather.c
** core.gather(items, n, return_errors): the wait of corun.gather, in C so
** that it costs about what a loop of joins does. One pass over the items
** checks them (a callable is spawned), raises the first failure among
** those already finished, and keeps the results of the finished prefix.
** Then the gathering task joins the first unfinished task (parking on its
** joiners, like task:join()) and, when woken, collects every finished task
** after it, up to the next unfinished one: no completion queue, no callback
** per task.
**
** Failing fast: while a gather that re-raises failures is parked, its
** record is linked in the loop's 'gathers' list; a task that ends failed or
** cancelled notes itself in every linked record (cr_gather_failed) and
** wakes the gatherer, which checks whether that task is one of its own
** (through an index of its tasks, built on the first such wake-up, so a
** storm of unrelated failures costs O(1) each). The record is linked only
** while its task is parked there: the continuation unlinks it before
** anything else.
*/

#include <string.h>

#include "corun.h"

#define NOTED 32  /* failures remembered per wake-up; more: rescan */

typedef struct cr_gather {
  cr_list node;               /* in lp->gathers while parked */
  cr_task *owner;             /* the gathering task */
  cr_task *failed[NOTED];     /* tasks that failed since it parked */
  int nfailed;                /* > NOTED: some were not noted */
} cr_gather;

/* Stack slots of core.gather. */
enum { ITEMS = 1, COUNT, RETERR, TASKS, RESULTS, RECORD, INDEX };

/* A task ended failed or cancelled (called by finish()). */
void cr_gather_failed(cr_loop *lp, cr_task *t) {
  cr_list *n, *next;
  for (n = cr_list_head(&lp->gathers); n != &lp->gathers; n = next) {
    cr_gather *g = cr_container_of(n, cr_gather, node);
    next = n->next;
    if (g->owner->status != CR_PENDING) {  /* closed while parked */
      cr_list_remove(n);
      continue;
    }
    if (g->nfailed < NOTED) g->failed[g->nfailed] = t;
    g->nfailed++;
    if (cr_list_linked(&g->owner->wnode))  /* else already woken */
      cr_wait_wake(&g->owner->w, CR_OK);
  }
}

static int gather_gc(lua_State *L) {
  cr_gather *g = (cr_gather *)lua_touserdata(L, 1);
  cr_list_remove(&g->node);
  return 0;
}

static int isfailed(cr_task *t) {
  return t->status == CR_FAILED || t->status == CR_CANCELLED_ST;
}

static cr_task *taskat(lua_State *L, lua_Integer i) {
  cr_task *t;
  lua_rawgeti(L, TASKS, i);
  t = (cr_task *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return t;
}

/* Request cancellation of every task of the list. */
static void cancel_all(lua_State *L, lua_Integer n) {
  lua_Integer i;
  for (i = 1; i <= n; i++) cr_task_cancel(L, taskat(L, i), 0);
}

/* Task i failed and failures are re-raised: cancel the rest, raise its
** error (which then counts as retrieved), as task:result() does. */
static int raise_failure(lua_State *L, lua_Integer i, lua_Integer n) {
  cr_task *t;
  cancel_all(L, n);
  lua_rawgeti(L, TASKS, i);
  t = (cr_task *)lua_touserdata(L, -1);
  return cr_task_pushresults(L, t, -1);
}

/* Store the first result of finished task i, on top of the stack (popped),
** in the results (its error object when it failed: return_errors). */
static void collect(lua_State *L, cr_task *t, lua_Integer i) {
  if (t->status == CR_FAILED) cr_task_retrieved(L, t);
  lua_getiuservalue(L, -1, CR_TUV_VALUE);
  if (t->status == CR_DONE && t->nres > 1) {
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
  lua_rawseti(L, RESULTS, i);
  lua_pop(L, 1);
}

static int gather_k(lua_State *L, int status, lua_KContext ctx);

/* Collect tasks pos..n while they are finished; park on the first that is
** not (or return the results when none is left). */
static int scan(lua_State *L, lua_Integer pos) {
  lua_Integer n = lua_tointeger(L, COUNT);
  int reterr = lua_toboolean(L, RETERR);
  for (; pos <= n; pos++) {
    cr_task *t;
    lua_rawgeti(L, TASKS, pos);  /* kept for collect() */
    t = (cr_task *)lua_touserdata(L, -1);
    if (t->status == CR_PENDING) {
      cr_loop *lp = t->loop;
      cr_task *me = cr_task_enter(L, lp, "gather");
      cr_gather *g = (cr_gather *)lua_touserdata(L, RECORD);
      if (me == t)
        return luaL_error(L, "gather: a task cannot gather itself");
      if (me->cancel_pending && !me->shielded) {
        cancel_all(L, n);
        cr_task_checkcancel(L, me);
      }
      lua_settop(L, INDEX);
      if (!reterr) {
        g->owner = me;
        g->nfailed = 0;
        cr_list_push(&lp->gathers, &g->node);
      }
      return cr_wait_on(L, me, &t->joiners, -1, (lua_KContext)pos,
                        gather_k);
    }
    if (!reterr && isfailed(t)) return raise_failure(L, pos, n);
    collect(L, t, pos);
  }
  lua_settop(L, RESULTS);
  return 1;
}

/* The index of 't' among tasks pos..n, or 0. The first call builds a
** table {[task pointer] = index} of tasks pos..n (reading only the list,
** not the tasks) in slot INDEX. */
static lua_Integer find(lua_State *L, cr_task *t, lua_Integer pos,
                        lua_Integer n) {
  lua_Integer at;
  if (lua_type(L, INDEX) != LUA_TTABLE) {
    lua_Integer i;
    lua_createtable(L, 0, (int)(n - pos + 1));
    for (i = pos; i <= n; i++) {
      lua_pushinteger(L, i);
      lua_rawsetp(L, -2, taskat(L, i));
    }
    lua_replace(L, INDEX);
  }
  lua_rawgetp(L, INDEX, t);
  at = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return at >= pos ? at : 0;
}

static int gather_k(lua_State *L, int status, lua_KContext ctx) {
  cr_gather *g = (cr_gather *)lua_touserdata(L, RECORD);
  cr_task *me = cr_loop_get(L)->current;
  lua_Integer pos = (lua_Integer)ctx, n = lua_tointeger(L, COUNT);
  (void)status;
  cr_list_remove(&g->node);
  lua_settop(L, INDEX);
  if (me->outcome == CR_CANCELLED || (me->cancel_pending && !me->shielded)) {
    cancel_all(L, n);  /* gather itself was cancelled: so are its children */
    cr_task_checkcancel(L, me);
    cr_task_outcome(L, me);
  }
  if (g->nfailed > 0) {
    int i, noted = g->nfailed < NOTED ? g->nfailed : NOTED;
    for (i = 0; i < noted; i++) {  /* in the order they failed */
      lua_Integer at = find(L, g->failed[i], pos, n);
      if (at > 0 && isfailed(g->failed[i])) return raise_failure(L, at, n);
    }
    if (g->nfailed > NOTED) {  /* some were not noted: look at each task */
      lua_Integer i;
      for (i = pos; i <= n; i++)
        if (isfailed(taskat(L, i))) return raise_failure(L, i, n);
    }
    g->nfailed = 0;
  }
  return scan(L, pos);
}

/* Is the value on top callable (a function, or __call)? */
static int callable(lua_State *L) {
  if (lua_isfunction(L, -1)) return 1;
  if (luaL_getmetafield(L, -1, "__call") == LUA_TNIL) return 0;
  lua_pop(L, 1);
  return 1;
}

/* Is one of items[i..n] a future (a thread's, a pool job's, ...)? */
static int hasfuture(lua_State *L, lua_Integer i, lua_Integer n) {
  for (; i <= n; i++) {
    cr_shared *s;
    lua_rawgeti(L, ITEMS, i);
    s = cr_shared_test(L, -1);
    lua_pop(L, 1);
    if (s != NULL && s->type == &cr_future_type) return 1;
  }
  return 0;
}

/* core.gather(items, n, return_errors): see the top of the file. Returns
** false, having done nothing, when an item is a future (corun.gather then
** gives each future a waiting task of its own). */
static int gather(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  lua_Integer i, n = luaL_checkinteger(L, COUNT), first = 0, bad = 0;
  int reterr;
  cr_gather *g;
  luaL_checktype(L, ITEMS, LUA_TTABLE);
  luaL_argcheck(L, n >= 0 && n < (1 << 30), COUNT, "bad count");
  for (i = 1; i <= n; i++) {  /* tasks only (the usual case): one look */
    int task;
    lua_rawgeti(L, ITEMS, i);
    task = cr_testobj(L, -1, cr_task, CR_TASK_MAGIC) != NULL;
    lua_pop(L, 1);
    if (!task) {
      if (hasfuture(L, i, n)) {
        lua_pushboolean(L, 0);
        return 1;
      }
      break;
    }
  }
  reterr = lua_toboolean(L, RETERR);
  lua_settop(L, RETERR);
  lua_pushvalue(L, ITEMS);                      /* TASKS (items, till a call) */
  lua_createtable(L, (int)n, 0);                /* RESULTS */
  g = (cr_gather *)lua_newuserdatauv(L, sizeof *g, 0);  /* RECORD */
  memset(g, 0, sizeof *g);
  cr_list_init(&g->node);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, RECORD);
  lua_pushnil(L);                               /* INDEX: built if needed */
  for (i = 1; i <= n; i++) {  /* every callable is spawned first */
    cr_task *t;
    lua_rawgeti(L, ITEMS, i);
    t = cr_testobj(L, -1, cr_task, CR_TASK_MAGIC);
    if (t == NULL) {
      if (!callable(L)) {
        luaL_where(L, 2);
        return luaL_error(L, "%sbad argument #%d to 'gather' (task or "
                          "function expected, got %s)", lua_tostring(L, -1),
                          (int)i, luaL_typename(L, -2));
      }
      if (lua_rawequal(L, TASKS, ITEMS)) {  /* a copy: items stay as given */
        lua_Integer j;
        lua_createtable(L, (int)n, 0);
        for (j = 1; j < i; j++) {
          lua_rawgeti(L, ITEMS, j);
          lua_rawseti(L, -2, j);
        }
        lua_replace(L, TASKS);
      }
      t = cr_task_spawn(L, lp, lua_gettop(L), 0);
      lua_remove(L, -2);
    }
    if (!lua_rawequal(L, TASKS, ITEMS)) lua_rawseti(L, TASKS, i);
    else lua_pop(L, 1);
    if (t->status == CR_PENDING) {
      if (first == 0) first = i;
    }
    else if (!reterr && isfailed(t)) {
      if (bad == 0) bad = i;
    }
    else if (first == 0) {
      lua_rawgeti(L, TASKS, i);
      collect(L, t, i);
    }
  }
  if (bad != 0) return raise_failure(L, bad, n);
  return scan(L, first == 0 ? n + 1 : first);
}

void cr_gather_open_lib(lua_State *L) {
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  lua_pushvalue(L, loopidx);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, gather_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcclosure(L, gather, 2);
  lua_setfield(L, -2, "gather");
}
