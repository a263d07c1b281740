/*
** queue.c
** Task-level queues: FIFO, LIFO and priority, bounded or not, with
** task_done/join and close. FIFO and LIFO items live in a ring (a Lua table
** in uservalue 1, slots 1..cap) that grows by doubling; priority items in a
** binary min-heap in the same table (slots 1..n), ordered by the function
** in uservalue 2 (or '<'). A bounded FIFO or LIFO queue of at most
** INLINE_MAX items keeps its ring in its own uservalues instead (slot i in
** uservalue i + 2, 'inl' set): a put or get then touches no table. Heap operations make every comparison before
** they move anything, so a comparator that raises loses no item.
**
** Invariants:
** - Getters wait only while the queue is empty; putters only while full.
**   So a put with a getter waiting hands the item straight to it (pushed on
**   the getter's coroutine), and a get that frees a slot moves the first
**   putter's item (still in its own frame, argument 2) into the queue.
** - One wait list per direction (getters, putters; wait.c's waiters):
**   plain tasks and select cases are served together in arrival order. A
**   task or case woken with an item keeps it even if cancelled afterwards;
**   a putter cancelled while parked still holds its item. So no item is
**   lost or duplicated.
*/

#include <string.h>
#include <limits.h>
#include <stdatomic.h>
#include <math.h>

#include "corun.h"

enum { CR_FIFO, CR_LIFO, CR_PRIO };

typedef struct cr_queue {
  cr_loop *loop;
  cr_list getters, putters, joiners;  /* waiters (tasks, select cases) */
  lua_Integer maxsize;                /* 0: unbounded */
  lua_Integer unfinished;             /* items put and not yet task_done */
  int head, n, cap;                   /* the ring in uservalue 1 */
  int kind;
  int closed;
  int busy;                           /* its comparator is running */
  int hasless;                        /* a priority queue with 'less' */
  int inl;                            /* the ring is in uservalues 2.. */
  unsigned magic;                     /* CR_QUEUE_MAGIC */
} cr_queue;

#define INLINE_MAX 1024  /* largest maxsize whose ring is in uservalues */

#define ITEM_ARG 2  /* where a parked putter keeps its item */

/* A priority queue's comparator (or an item's __lt) may not use the queue
** it orders: the heap is mid-operation while it runs. */
static void checkidle(lua_State *L, cr_queue *q, const char *fname) {
  if (q->busy)
    luaL_error(L, "%s: a priority queue's comparator cannot use the queue "
                  "it orders", fname);
}

static inline cr_queue *checkqueue(lua_State *L, const char *fname) {
  cr_queue *q = cr_testobj(L, 1, cr_queue, CR_QUEUE_MAGIC);
  if (q == NULL) luaL_typeerror(L, 1, CR_QUEUE_MT);
  checkidle(L, q, fname);
  return q;
}

int cr_queue_test(lua_State *L, int idx) {
  return cr_testobj(L, idx, cr_queue, CR_QUEUE_MAGIC) != NULL;
}

static int isfull(cr_queue *q) {
  return q->maxsize > 0 && q->n >= q->maxsize;
}

/* {=================================================================
** The ring
** ================================================================== */

static void grow(lua_State *L, cr_queue *q, int qidx) {
  int i, cap;
  if (q->cap > INT_MAX / 2) luaL_error(L, "put: the queue is too large");
  cap = q->cap * 2;
  lua_getiuservalue(L, qidx, 1);
  lua_createtable(L, cap, 0);
  for (i = 0; i < q->n; i++) {
    lua_rawgeti(L, -2, (q->head + i) % q->cap + 1);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setiuservalue(L, qidx, 1);
  lua_pop(L, 1);
  q->head = 0;
  q->cap = cap;
}

/* {=================================================================
** The heap (priority queues)
** ================================================================== */

static int lessthan(lua_State *L) {
  lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
  return 1;
}

/* Is the value at 'a' less than the one at 'b'? May raise. Lua code (the
** comparator, an __lt) runs with the queue marked busy, protected so that
** the mark is cleared also when it raises. */
static int less(lua_State *L, cr_queue *q, int qidx, int a, int b) {
  int r, ta, tb;
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (!q->hasless) {
    ta = lua_type(L, a);
    tb = lua_type(L, b);
    if (ta == tb && (ta == LUA_TNUMBER || ta == LUA_TSTRING))
      return lua_compare(L, a, b, LUA_OPLT);  /* no metamethod */
    lua_pushcfunction(L, lessthan);
  }
  else
    lua_getiuservalue(L, qidx, 2);
  lua_pushvalue(L, a);
  lua_pushvalue(L, b);
  q->busy = 1;
  r = lua_pcall(L, 2, 1, 0);
  q->busy = 0;
  if (r != LUA_OK) lua_error(L);
  r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

/* Insert the value on top (popped) into the heap in table 'ring'. */
static void heap_push(lua_State *L, cr_queue *q, int qidx, int ring) {
  int v = lua_gettop(L), i = q->n + 1, p;
  while (i > 1) {  /* find the slot first: comparisons may raise */
    p = i / 2;
    lua_rawgeti(L, ring, p);
    if (!less(L, q, qidx, v, lua_gettop(L))) {
      lua_pop(L, 1);
      break;
    }
    lua_pop(L, 1);
    i = p;
  }
  for (p = q->n + 1; p > i; p /= 2) {  /* then move the parents down */
    lua_rawgeti(L, ring, p / 2);
    lua_rawseti(L, ring, p);
  }
  lua_rawseti(L, ring, i);
  q->n++;
}

/* Remove the least item of the heap in table 'ring' and push it. */
static void heap_pop(lua_State *L, cr_queue *q, int qidx, int ring) {
  int path[64], depth = 0, i = 1, n = q->n, last;
  lua_rawgeti(L, ring, n);
  last = lua_gettop(L);
  for (;;) {  /* the path the last item sinks along, before moving any */
    int c = 2 * i;
    if (c >= n) break;
    lua_rawgeti(L, ring, c);
    if (c + 1 < n) {
      lua_rawgeti(L, ring, c + 1);
      if (less(L, q, qidx, -1, -2)) {
        c++;
        lua_remove(L, -2);
      }
      else
        lua_pop(L, 1);
    }
    if (!less(L, q, qidx, -1, last)) {
      lua_pop(L, 1);
      break;
    }
    lua_pop(L, 1);
    path[depth++] = c;
    i = c;
  }
  lua_rawgeti(L, ring, 1);  /* the result */
  lua_insert(L, last);
  for (i = 0; i < depth; i++) {
    lua_rawgeti(L, ring, path[i]);
    lua_rawseti(L, ring, i > 0 ? path[i - 1] : 1);
  }
  lua_pushnil(L);
  lua_rawseti(L, ring, n);
  if (n > 1) lua_rawseti(L, ring, depth > 0 ? path[depth - 1] : 1);
  else lua_pop(L, 1);
  q->n--;
}

/* }================================================================= */

/* Append the value on top of L (popped). */
static void store(lua_State *L, cr_queue *q, int qidx) {
  if (q->kind == CR_PRIO) {
    lua_getiuservalue(L, qidx, 1);
    lua_insert(L, -2);
    heap_push(L, q, qidx, lua_gettop(L) - 1);
    lua_pop(L, 1);
    return;
  }
  if (q->inl) {  /* never full here: a bounded queue stores below maxsize */
    lua_setiuservalue(L, qidx, (q->head + q->n) % q->cap + 2);
    q->n++;
    return;
  }
  if (q->n == q->cap) grow(L, q, qidx);
  lua_getiuservalue(L, qidx, 1);  /* no lua_insert: a rotate costs more */
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, (q->head + q->n) % q->cap + 1);
  lua_pop(L, 2);
  q->n++;
}

/* Remove the next item and push it. */
static void take(lua_State *L, cr_queue *q, int qidx) {
  int slot;
  if (q->kind == CR_PRIO) {
    lua_getiuservalue(L, qidx, 1);
    heap_pop(L, q, qidx, lua_gettop(L));
    lua_remove(L, -2);
    return;
  }
  slot = q->kind == CR_LIFO ? (q->head + q->n - 1) % q->cap : q->head;
  if (q->inl) {
    lua_getiuservalue(L, qidx, slot + 2);
    lua_pushnil(L);
    lua_setiuservalue(L, qidx, slot + 2);
  }
  else {
    lua_getiuservalue(L, qidx, 1);
    lua_rawgeti(L, -1, slot + 1);
    lua_pushnil(L);
    lua_rawseti(L, -3, slot + 1);
    lua_replace(L, -2);  /* the item over the ring: cheaper than lua_remove */
  }
  if (q->kind != CR_LIFO) q->head = (q->head + 1) % q->cap;
  q->n--;
}

/* }================================================================= */


/* {=================================================================
** Putting and getting
** ================================================================== */

/* Give the value at 'vidx' to the first waiting getter (a task or a
** select case); 0 when nobody waits. */
static int handoff(lua_State *L, cr_queue *q, int vidx) {
  if (!cr_wait_give(L, &q->getters, vidx))
    return 0;
  q->unfinished++;
  return 1;
}

/* A slot is free ('extra': or will be): move the first parked putter's
** item into the queue. */
static void refill(lua_State *L, cr_queue *q, int qidx, int extra) {
  cr_waiter *w;
  if (q->maxsize > 0 && q->n - extra >= q->maxsize) return;  /* no overflow */
  if (cr_list_empty(&q->putters) ||
      (w = cr_wait_takeoffer(L, &q->putters)) == NULL)
    return;
  store(L, q, qidx);  /* may raise (a comparator): then nothing moved */
  q->unfinished++;
  cr_wait_accepted(w);
}

/* put_nowait: 1 when the value at 'vidx' went in, else nil,why pushed. */
static int offer(lua_State *L, cr_queue *q, int qidx, int vidx) {
  if (q->closed) return cr_pushfail(L, "closed");
  if (handoff(L, q, vidx)) return 1;
  if (isfull(q)) return cr_pushfail(L, "full");
  lua_pushvalue(L, vidx);
  store(L, q, qidx);
  q->unfinished++;
  return 1;
}

int cr_queue_offer(lua_State *L, int qidx, int vidx) {
  cr_queue *q = (cr_queue *)lua_touserdata(L, qidx);
  qidx = lua_absindex(L, qidx);
  vidx = lua_absindex(L, vidx);
  checkidle(L, q, "on_done");
  if (offer(L, q, qidx, vidx) == 1)
    return 1;
  lua_pop(L, 2);
  return 0;
}

/* get_nowait: pushes an item and returns 1, or pushes nil,why. */
static int poll(lua_State *L, cr_queue *q, int qidx) {
  if (q->n > 0) {
    if (q->kind == CR_PRIO) {  /* the putter's item may be the least */
      refill(L, q, qidx, 1);
      take(L, q, qidx);
      return 1;
    }
    take(L, q, qidx);
    refill(L, q, qidx, 0);
    return 1;
  }
  return cr_pushfail(L, q->closed ? "closed" : "empty");
}

static void checkitem(lua_State *L, int arg, const char *fname) {
  if (lua_type(L, arg) > LUA_TNIL) return;  /* one call on the hot path */
  luaL_checkany(L, arg);
  cr_badarg(L, arg, fname, "nil is not a valid item");
}

static int pushtrue(lua_State *L) {
  lua_pushboolean(L, 1);
  return 1;
}

/* offer() for the Lua API: true, or nil,why. */
static int putnow(lua_State *L, cr_queue *q) {
  if (offer(L, q, 1, ITEM_ARG) == 2) return 2;
  lua_pushboolean(L, 1);
  return 1;
}

/* Continuations: the outcome of a parked put, get, iter or join. The
** context is the parked task with the kind of wait in its low bits (a
** task is a userdata: aligned to 8), which spares a loop look-up. */
enum { W_PUT, W_GET, W_ITER, W_JOIN };
#define WCTX(t, kind) ((lua_KContext)(t) | (kind))

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  cr_task *t = (cr_task *)(ctx & ~(lua_KContext)3);
  int kind = (int)(ctx & 3);
  (void)status;
  switch (cr_task_outcome(L, t)) {
    case CR_TIMEOUT: return cr_pushfail(L, "timeout");
    case CR_CLOSED:
      if (kind == W_ITER) return 0;
      return cr_pushfail(L, "closed");
    default:
      if (kind == W_GET || kind == W_ITER) return 1;  /* the item handed over */
      lua_pushboolean(L, 1);
      return 1;
  }
}

static int queue_put(lua_State *L) {
  cr_queue *q = checkqueue(L, "put");
  double timeout = cr_opttimeout(L, 3);
  cr_task *t;
  checkitem(L, ITEM_ARG, "put");
  if (q->closed || !isfull(q)) return putnow(L, q);
  if (handoff(L, q, ITEM_ARG)) return pushtrue(L);
  t = cr_task_enter(L, q->loop, "put");
  lua_settop(L, ITEM_ARG);  /* the item on top: what it offers (wait.c) */
  return cr_wait_on(L, t, &q->putters, timeout, WCTX(t, W_PUT), wait_k);
}

static int queue_get(lua_State *L) {
  cr_queue *q = checkqueue(L, "get");
  double timeout = cr_opttimeout(L, 2);
  cr_task *t;
  if (q->n > 0 || q->closed) return poll(L, q, 1);
  t = cr_task_enter(L, q->loop, "get");
  if (lua_gettop(L) > 1) lua_settop(L, 1);
  return cr_wait_on(L, t, &q->getters, timeout, WCTX(t, W_GET), wait_k);
}

static int queue_put_nowait(lua_State *L) {
  cr_queue *q = checkqueue(L, "put_nowait");
  checkitem(L, ITEM_ARG, "put_nowait");
  return putnow(L, q);
}

static int queue_get_nowait(lua_State *L) {
  return poll(L, checkqueue(L, "get_nowait"), 1);
}

/* The generic-for step of q:iter(): an item, or nil once closed+drained. */
static int queue_next(lua_State *L) {
  cr_queue *q = checkqueue(L, "iter");
  cr_task *t;
  if (q->n > 0) return poll(L, q, 1);
  if (q->closed) return 0;
  t = cr_task_enter(L, q->loop, "iter");
  lua_settop(L, 1);
  return cr_wait_on(L, t, &q->getters, -1, WCTX(t, W_ITER), wait_k);
}

static int queue_iter(lua_State *L) {
  checkqueue(L, "iter");
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  return 2;
}

static int queue_task_done(lua_State *L) {
  cr_queue *q = checkqueue(L, "task_done");
  if (q->unfinished <= 0)
    return luaL_error(L, "task_done: called more times than there were "
                         "items put");
  if (--q->unfinished == 0)
    cr_wait_wakeall(&q->joiners, CR_OK);
  return 0;
}

static int queue_join(lua_State *L) {
  cr_queue *q = checkqueue(L, "join");
  double timeout = cr_opttimeout(L, 2);
  cr_task *t;
  if (q->unfinished == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  t = cr_task_enter(L, q->loop, "join");
  lua_settop(L, 1);
  return cr_wait_on(L, t, &q->joiners, timeout, WCTX(t, W_JOIN), wait_k);
}

static int queue_close(lua_State *L) {
  cr_queue *q = checkqueue(L, "close");
  q->closed = 1;
  cr_wait_wakeall(&q->getters, CR_CLOSED);
  cr_wait_wakeall(&q->putters, CR_CLOSED);
  return 0;
}

/* }================================================================= */


/* {=================================================================
** Introspection and construction
** ================================================================== */

static int queue_size(lua_State *L) {
  lua_pushinteger(L, checkqueue(L, "size")->n);
  return 1;
}

static int queue_empty(lua_State *L) {
  lua_pushboolean(L, checkqueue(L, "empty")->n == 0);
  return 1;
}

static int queue_full(lua_State *L) {
  lua_pushboolean(L, isfull(checkqueue(L, "full")));
  return 1;
}

static int queue_closed(lua_State *L) {
  lua_pushboolean(L, checkqueue(L, "closed")->closed);
  return 1;
}

static int queue_maxsize(lua_State *L) {
  lua_pushinteger(L, checkqueue(L, "maxsize")->maxsize);
  return 1;
}

static int queue_tostring(lua_State *L) {
  cr_queue *q = cr_testobj(L, 1, cr_queue, CR_QUEUE_MAGIC);
  if (q == NULL) luaL_typeerror(L, 1, CR_QUEUE_MT);
  lua_pushfstring(L, "corun.queue (%d items%s): %p", q->n,
                  q->closed ? ", closed" : "", (void *)q);
  return 1;
}

/* Push a new queue with room for 'cap' items before its ring grows. */
static cr_queue *pushqueue(lua_State *L, int kind, lua_Integer maxsize,
                           int cap) {
  int inl = kind != CR_PRIO && maxsize > 0 && maxsize <= INLINE_MAX;
  cr_queue *q = (cr_queue *)lua_newuserdatauv(L, sizeof *q,
      inl ? 1 + (int)maxsize : kind == CR_PRIO ? 2 : 1);
  memset(q, 0, sizeof *q);
  q->loop = cr_loop_get(L);
  q->kind = kind;
  q->maxsize = maxsize;
  q->inl = inl;
  q->cap = inl ? (int)maxsize : cap > 0 ? cap : 1;
  q->magic = CR_QUEUE_MAGIC;
  cr_list_init(&q->getters);
  cr_list_init(&q->putters);
  cr_list_init(&q->joiners);
  cr_setmetatable(L, &cr_queue_mtkey);
  if (inl) return q;
  lua_createtable(L, q->cap, 0);
  lua_setiuservalue(L, -2, 1);
  return q;
}

/* maxsize stays an integer (asyncio also takes a float such as 1.3). */
static int newqueue(lua_State *L, int kind, const char *fname) {
  lua_Integer maxsize = 0;
  if (!lua_isnoneornil(L, 1)) {
    int isnum;
    maxsize = lua_tointegerx(L, 1, &isnum);
    if (!isnum)
      return cr_badarg(L, 1, fname, lua_type(L, 1) == LUA_TNUMBER
                                      ? "maxsize must be an integer"
                                      : "integer expected");
  }
  if (maxsize < 0) return cr_badarg(L, 1, fname, "maxsize must be >= 0");
  pushqueue(L, kind, maxsize, maxsize > 0 && maxsize < 16 ? (int)maxsize : 16);
  return 1;
}

/* core.completion_queue(list, n): a new queue that receives each of the
** tasks list[1..n] when it finishes (the waits of gather, wait, ...). */
static int queue_completion(lua_State *L) {
  lua_Integer i, n = luaL_checkinteger(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, n >= 0 && n < INT_MAX, 2, "bad count");
  pushqueue(L, CR_FIFO, 0, (int)n);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    cr_task_notify(L, lua_gettop(L), 3);
    lua_pop(L, 1);
  }
  return 1;
}

static int queue_new(lua_State *L) {
  return newqueue(L, CR_FIFO, "queue");
}

static int queue_new_lifo(lua_State *L) {
  return newqueue(L, CR_LIFO, "lifo_queue");
}

/* priority_queue([maxsize], [less]) */
static int queue_new_prio(lua_State *L) {
  if (!lua_isnoneornil(L, 2)) cr_checkcallable(L, 2);
  lua_settop(L, 2);
  newqueue(L, CR_PRIO, "priority_queue");
  ((cr_queue *)lua_touserdata(L, -1))->hasless = !lua_isnil(L, 2);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 2);
  return 1;
}

/* {=================================================================
** select cases on queues
** ================================================================== */

/* Do a get (put of the value at 'vidx') now if it can be done: 1 done (a
** get pushes the item), 0 it would wait, -1 the queue is closed (and, for
** a get, drained). */
int cr_queue_select_try(lua_State *L, int qidx, int put, int vidx) {
  cr_queue *q = (cr_queue *)lua_touserdata(L, qidx);
  qidx = lua_absindex(L, qidx);
  checkidle(L, q, "select");
  if (!put) {
    if (q->n > 0) return poll(L, q, qidx), 1;
    return q->closed ? -1 : 0;
  }
  if (q->closed) return -1;
  vidx = lua_absindex(L, vidx);
  if (offer(L, q, qidx, vidx) == 1) return 1;
  lua_pop(L, 2);  /* nil, "full" */
  return 0;
}

/* Is the queue at 'idx' a priority queue (no select put-cases)? */
int cr_queue_is_priority(lua_State *L, int idx) {
  return ((cr_queue *)lua_touserdata(L, idx))->kind == CR_PRIO;
}

/* Link select case 'c' among the waiters of its direction. */
void cr_queue_select_link(lua_State *L, int qidx, int put, cr_case *c) {
  cr_queue *q = (cr_queue *)lua_touserdata(L, qidx);
  c->queue = 1;
  cr_list_push(put ? &q->putters : &q->getters, &c->w.node);
}

/* }================================================================= */

void cr_queue_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"queue", queue_new},
    {"lifo_queue", queue_new_lifo},
    {"priority_queue", queue_new_prio},
    {"completion_queue", queue_completion},
    {NULL, NULL}
  };
  static const luaL_Reg meta[] = {
    {"__len", queue_size},
    {"__tostring", queue_tostring},
    {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"put", queue_put},
    {"get", queue_get},
    {"put_nowait", queue_put_nowait},
    {"get_nowait", queue_get_nowait},
    {"task_done", queue_task_done},
    {"join", queue_join},
    {"close", queue_close},
    {"closed", queue_closed},
    {"size", queue_size},
    {"empty", queue_empty},
    {"full", queue_full},
    {"maxsize", queue_maxsize},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  cr_newclass(L, CR_QUEUE_MT, meta, methods, loopidx);
  luaL_getmetatable(L, CR_QUEUE_MT);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cr_queue_mtkey);
  /* iter needs the step function as its second upvalue */
  luaL_getmetatable(L, CR_QUEUE_MT);
  lua_getfield(L, -1, "__index");
  lua_pushvalue(L, loopidx);
  lua_pushvalue(L, loopidx);
  lua_pushcclosure(L, queue_next, 1);
  lua_pushcclosure(L, queue_iter, 2);
  lua_setfield(L, -2, "iter");
  lua_pop(L, 2);
}

/* }================================================================= */
