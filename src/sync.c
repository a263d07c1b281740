/*
** sync.c
** Task-level synchronisation: lock and rlock, semaphore and
** bounded_semaphore, event, condition, barrier. Each is a userdata holding
** its state and an intrusive FIFO list of parked tasks; parking and waking
** allocate nothing.
**
** Fairness: waiters are served in arrival order, by hand-off. Releasing a
** lock (or a semaphore) with waiters gives it directly to the first one, so
** a task that releases and re-acquires at once queues behind them.
** Cancellation: a task handed a lock or a permit keeps it (it gets
** Cancelled at its next suspension). A condition wait re-acquires its lock
** before returning, also when cancelled; a notification that reaches a
** task being cancelled is passed on to the next waiter. A barrier follows
** asyncio's states (see its section); a barrier wait that times out breaks
** it for the others, as threading.Barrier's does.
*/

#include <string.h>
#include <math.h>

#include "corun.h"

#define CR_LOCK_MAGIC    0x7a5c0010u
#define CR_SEM_MAGIC     0x7a5c0011u
#define CR_EVENT_MAGIC   0x7a5c0012u
#define CR_COND_MAGIC    0x7a5c0013u
#define CR_BARRIER_MAGIC 0x7a5c0014u

#define CR_LOCK_MT    "corun.lock"
#define CR_SEM_MT     "corun.semaphore"
#define CR_EVENT_MT   "corun.event"
#define CR_COND_MT    "corun.condition"
#define CR_BARRIER_MT "corun.barrier"

typedef struct cr_lock {
  cr_loop *loop;
  cr_list waiters;
  cr_task *owner;               /* NULL when free */
  lua_Integer depth;            /* acquisitions by the owner (rlock) */
  int reentrant;
  unsigned magic;
} cr_lock;

typedef struct cr_sem {
  cr_loop *loop;
  cr_list waiters;
  lua_Integer value;
  lua_Integer bound;            /* bounded: the initial value; else -1 */
  unsigned magic;
} cr_sem;

typedef struct cr_event {
  cr_loop *loop;
  cr_list waiters;
  int set;
  unsigned magic;
} cr_event;

typedef struct cr_cond {
  cr_loop *loop;
  cr_list waiters;
  cr_lock *lock;                /* owned via uservalue 1 */
  unsigned magic;
} cr_cond;

typedef struct cr_barrier {
  cr_loop *loop;
  cr_list waiters;              /* counted arrivals of the filling round */
  cr_list blocked;              /* arrivals held while draining/resetting */
  lua_Integer parties;
  lua_Integer count;            /* tasks inside wait (asyncio's _count) */
  unsigned cycle;               /* bumped by each trip, reset and break */
  int state;                    /* BAR_FILLING, ... */
  unsigned magic;
} cr_barrier;

#define CHECK(name, type, magicv, mt) \
  static type *name(lua_State *L, int idx) { \
    type *p = cr_testobj(L, idx, type, magicv); \
    if (p == NULL) luaL_typeerror(L, idx, mt); \
    return p; \
  }

CHECK(checklock, cr_lock, CR_LOCK_MAGIC, CR_LOCK_MT)
CHECK(checksem, cr_sem, CR_SEM_MAGIC, CR_SEM_MT)
CHECK(checkevent, cr_event, CR_EVENT_MAGIC, CR_EVENT_MT)
CHECK(checkcond, cr_cond, CR_COND_MAGIC, CR_COND_MT)
CHECK(checkbarrier, cr_barrier, CR_BARRIER_MAGIC, CR_BARRIER_MT)

/* {=================================================================
** Shared pieces
** ================================================================== */

static int pushtrue(lua_State *L) {
  lua_pushboolean(L, 1);
  return 1;
}

/* The outcome of a plain wait: true, nil,"timeout" or nil,"broken"; a
** hold() returns its object instead of true. The context is the parked
** task (a userdata: aligned to 8) with HOLD in its low bit for a hold(). */
#define HOLD 1
#define WCTX(t, hold) ((lua_KContext)(t) | ((hold) ? HOLD : 0))

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  cr_task *t = (cr_task *)(ctx & ~(lua_KContext)HOLD);
  (void)status;
  switch (cr_task_outcome(L, t)) {
    case CR_TIMEOUT: return cr_pushfail(L, "timeout");
    case CR_BROKEN: return cr_pushfail(L, "broken");
    default:
      if (ctx & HOLD) {
        lua_settop(L, 1);
        return 1;
      }
      return pushtrue(L);
  }
}

/* The value of 'n' (argument 'arg'), an integer >= 'min'. */
static lua_Integer checkcount(lua_State *L, int arg, lua_Integer min,
                              const char *fname) {
  lua_Integer n = luaL_checkinteger(L, arg);
  if (n < min)
    cr_badarg(L, arg, fname,
              lua_pushfstring(L, "must be >= %I", (LUAI_UACINT)min));
  return n;
}

/* }================================================================= */


/* {=================================================================
** lock and rlock
** ================================================================== */

/* Give the lock to the first waiter, or free it. */
static void lock_handoff(cr_lock *k) {
  cr_task *t = cr_wait_wakeone(&k->waiters, CR_OK);
  k->owner = t;
  k->depth = t != NULL;
}

/* Acquire for the running task 'me'; returns 1 when it got the lock at
** once, 0 when it must wait. */
static int lock_try(lua_State *L, cr_lock *k, cr_task *me) {
  if (k->owner == NULL) {
    k->owner = me;
    k->depth = 1;
    return 1;
  }
  if (k->owner != me) return 0;
  if (!k->reentrant)
    luaL_error(L, "acquire: this task already holds the lock (a corun.rlock "
                  "can be acquired again by its owner)");
  k->depth++;
  return 1;
}

static int lock_acquire_(lua_State *L, int ctx, const char *fname) {
  cr_lock *k = checklock(L, 1);
  double timeout = ctx == 'h' ? -1 : cr_opttimeout(L, 2);
  cr_task *me = cr_task_enter(L, k->loop, fname);
  if (lock_try(L, k, me)) {
    lua_settop(L, 1);
    return ctx == 'h' ? 1 : pushtrue(L);
  }
  lua_settop(L, 1);
  return cr_wait_on(L, me, &k->waiters, timeout, WCTX(me, ctx == 'h'),
                    wait_k);
}

static int lock_acquire(lua_State *L) {
  return lock_acquire_(L, 'a', "acquire");
}

static int lock_hold(lua_State *L) {
  return lock_acquire_(L, 'h', "hold");
}

static void lock_release_(lua_State *L, cr_lock *k) {
  cr_task *me = k->loop->current;
  if (k->owner == NULL)
    luaL_error(L, "release: the lock is not held");
  if (k->owner != me)
    luaL_error(L, "release: the lock is held by another task");
  if (--k->depth == 0) lock_handoff(k);
}

static int lock_release(lua_State *L) {
  lock_release_(L, checklock(L, 1));
  return 0;
}

static int lock_locked(lua_State *L) {
  lua_pushboolean(L, checklock(L, 1)->owner != NULL);
  return 1;
}

static int lock_tostring(lua_State *L) {
  cr_lock *k = checklock(L, 1);
  lua_pushfstring(L, "corun.%s (%s): %p", k->reentrant ? "rlock" : "lock",
                  k->owner ? "locked" : "unlocked", (void *)k);
  return 1;
}

static cr_lock *newlock(lua_State *L, int reentrant) {
  cr_lock *k = (cr_lock *)lua_newuserdatauv(L, sizeof *k, 0);
  memset(k, 0, sizeof *k);
  k->loop = cr_loop_get(L);
  k->reentrant = reentrant;
  k->magic = CR_LOCK_MAGIC;
  cr_list_init(&k->waiters);
  luaL_setmetatable(L, CR_LOCK_MT);
  return k;
}

static int sync_lock(lua_State *L) {
  newlock(L, 0);
  return 1;
}

static int sync_rlock(lua_State *L) {
  newlock(L, 1);
  return 1;
}

/* }================================================================= */


/* {=================================================================
** semaphore and bounded_semaphore
** ================================================================== */

static int sem_acquire_(lua_State *L, int ctx, const char *fname) {
  cr_sem *s = checksem(L, 1);
  double timeout = ctx == 'h' ? -1 : cr_opttimeout(L, 2);
  cr_task *me;
  if (s->value > 0) {  /* then nobody waits: permits are handed off */
    s->value--;
    lua_settop(L, 1);
    return ctx == 'h' ? 1 : pushtrue(L);
  }
  me = cr_task_enter(L, s->loop, fname);
  lua_settop(L, 1);
  return cr_wait_on(L, me, &s->waiters, timeout, WCTX(me, ctx == 'h'),
                    wait_k);
}

static int sem_acquire(lua_State *L) {
  return sem_acquire_(L, 'a', "acquire");
}

static int sem_hold(lua_State *L) {
  return sem_acquire_(L, 'h', "hold");
}

static int sem_release(lua_State *L) {
  cr_sem *s = checksem(L, 1);
  if (!cr_list_empty(&s->waiters))  /* the permit is handed over */
    cr_wait_wakeone(&s->waiters, CR_OK);
  else if (s->bound >= 0 && s->value >= s->bound)
    return luaL_error(L, "release: bounded semaphore released too many "
                         "times");
  else if (s->value == LUA_MAXINTEGER)
    return luaL_error(L, "release: the semaphore's value would exceed "
                         "math.maxinteger");
  else
    s->value++;
  return 0;
}

static int sem_value(lua_State *L) {
  lua_pushinteger(L, checksem(L, 1)->value);
  return 1;
}

/* Would acquire() wait? (With hand-off, value > 0 means nobody waits.) */
static int sem_locked(lua_State *L) {
  lua_pushboolean(L, checksem(L, 1)->value == 0);
  return 1;
}

static int sem_tostring(lua_State *L) {
  cr_sem *s = checksem(L, 1);
  lua_pushfstring(L, "corun.%ssemaphore (value %I): %p",
                  s->bound >= 0 ? "bounded_" : "", (LUAI_UACINT)s->value,
                  (void *)s);
  return 1;
}

static int newsem(lua_State *L, int bounded, const char *fname) {
  lua_Integer n = lua_isnoneornil(L, 1) ? 1 : checkcount(L, 1, 0, fname);
  cr_sem *s = (cr_sem *)lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->loop = cr_loop_get(L);
  s->value = n;
  s->bound = bounded ? n : -1;
  s->magic = CR_SEM_MAGIC;
  cr_list_init(&s->waiters);
  luaL_setmetatable(L, CR_SEM_MT);
  return 1;
}

static int sync_semaphore(lua_State *L) {
  return newsem(L, 0, "semaphore");
}

static int sync_bounded_semaphore(lua_State *L) {
  return newsem(L, 1, "bounded_semaphore");
}

/* }================================================================= */


/* {=================================================================
** event
** ================================================================== */

static int event_set(lua_State *L) {
  cr_event *e = checkevent(L, 1);
  e->set = 1;
  cr_wait_wakeall(&e->waiters, CR_OK);
  return 0;
}

static int event_clear(lua_State *L) {
  checkevent(L, 1)->set = 0;
  return 0;
}

static int event_is_set(lua_State *L) {
  lua_pushboolean(L, checkevent(L, 1)->set);
  return 1;
}

static int event_wait(lua_State *L) {
  cr_event *e = checkevent(L, 1);
  double timeout = cr_opttimeout(L, 2);
  cr_task *me;
  if (e->set) return pushtrue(L);
  me = cr_task_enter(L, e->loop, "wait");
  lua_settop(L, 1);
  return cr_wait_on(L, me, &e->waiters, timeout, WCTX(me, 0), wait_k);
}

static int event_tostring(lua_State *L) {
  cr_event *e = checkevent(L, 1);
  lua_pushfstring(L, "corun.event (%s): %p", e->set ? "set" : "clear",
                  (void *)e);
  return 1;
}

static int sync_event(lua_State *L) {
  cr_event *e = (cr_event *)lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  e->loop = cr_loop_get(L);
  e->magic = CR_EVENT_MAGIC;
  cr_list_init(&e->waiters);
  luaL_setmetatable(L, CR_EVENT_MT);
  return 1;
}

/* }================================================================= */


/* {=================================================================
** condition
** A wait releases the lock entirely (an rlock's depth is kept in the
** continuation context), parks, then re-acquires it shielded from
** cancellation; a cancellation that arrived meanwhile is raised once the
** lock is held again.
** ================================================================== */

#define CTX(phase, outcome, cancelled, depth) \
  ((lua_KContext)(phase) | ((lua_KContext)(outcome) << 2) | \
   ((lua_KContext)(cancelled) << 5) | ((lua_KContext)(depth) << 8))
#define CTX_PHASE(c)     ((int)((c) & 3))
#define CTX_OUTCOME(c)   ((int)(((c) >> 2) & 7))
#define CTX_CANCELLED(c) ((int)(((c) >> 5) & 1))
#define CTX_DEPTH(c)     ((lua_Integer)((c) >> 8))

enum { PHASE_WAIT = 1, PHASE_LOCK = 2 };

static cr_lock *condlock(lua_State *L, cr_cond *c, const char *fname) {
  if (c->lock->owner == NULL || c->lock->owner != c->loop->current)
    luaL_error(L, "%s: the condition's lock is not held by this task",
               fname);
  return c->lock;
}

static int cond_k(lua_State *L, int status, lua_KContext ctx);

/* The lock is held again: restore its depth, then report the outcome. */
static int cond_done(lua_State *L, cr_cond *c, cr_task *me, cr_lock *k,
                     lua_KContext ctx) {
  k->depth = CTX_DEPTH(ctx);
  cr_task_setshielded(me, 0);
  if (CTX_CANCELLED(ctx) || cr_task_cancelnow(me)) {
    /* notified, but the wait raises: pass the notification on */
    if (CTX_OUTCOME(ctx) == CR_OK) cr_wait_wakeone(&c->waiters, CR_OK);
    cr_task_raisecancel(L, me);  /* raises */
  }
  if (CTX_OUTCOME(ctx) == CR_TIMEOUT) return cr_pushfail(L, "timeout");
  return pushtrue(L);
}

static int cond_k(lua_State *L, int status, lua_KContext ctx) {
  cr_cond *c = checkcond(L, 1);
  cr_task *me = c->loop->current;
  cr_lock *k = c->lock;
  int outcome, cancelled = CTX_CANCELLED(ctx);
  (void)status;
  if (CTX_PHASE(ctx) == PHASE_LOCK) return cond_done(L, c, me, k, ctx);
  outcome = cr_task_takeoutcome(me);
  if (outcome == CR_CANCELLED) cancelled = 1;
  ctx = CTX(PHASE_LOCK, outcome, cancelled, CTX_DEPTH(ctx));
  if (k->owner == NULL) {
    k->owner = me;
    return cond_done(L, c, me, k, ctx);
  }
  cr_task_setshielded(me, 1);
  return cr_wait_on(L, me, &k->waiters, -1, ctx, cond_k);
}

static int cond_wait(lua_State *L) {
  cr_cond *c = checkcond(L, 1);
  double timeout = cr_opttimeout(L, 2);
  cr_task *me = cr_task_enter(L, c->loop, "wait");
  cr_lock *k = condlock(L, c, "wait");
  lua_Integer depth = k->depth;
  if (cr_task_cancelnow(me))
    cr_task_raisecancel(L, me);  /* raises, the lock still held */
  k->depth = 0;
  lock_handoff(k);
  lua_settop(L, 1);
  return cr_wait_on(L, me, &c->waiters, timeout,
                    CTX(PHASE_WAIT, 0, 0, depth), cond_k);
}

static int cond_notify(lua_State *L) {
  cr_cond *c = checkcond(L, 1);
  lua_Integer n = lua_isnoneornil(L, 2) ? 1 : checkcount(L, 2, 0, "notify");
  condlock(L, c, "notify");
  while (n-- > 0 && !cr_list_empty(&c->waiters))
    cr_wait_wakeone(&c->waiters, CR_OK);
  return 0;
}

static int cond_notify_all(lua_State *L) {
  cr_cond *c = checkcond(L, 1);
  condlock(L, c, "notify_all");
  cr_wait_wakeall(&c->waiters, CR_OK);
  return 0;
}

/* acquire / hold / release / locked act on the condition's lock. */
static int cond_lockop(lua_State *L, lua_CFunction op) {
  checkcond(L, 1);
  lua_getiuservalue(L, 1, 1);
  lua_replace(L, 1);
  return op(L);
}

static int cond_acquire(lua_State *L) {
  return cond_lockop(L, lock_acquire);
}

static int cond_hold_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  cr_task_outcome(L, cr_loop_get(L)->current);
  lua_settop(L, 1);
  return 1;
}

static int cond_hold(lua_State *L) {
  cr_cond *c = checkcond(L, 1);
  cr_task *me = cr_task_enter(L, c->loop, "hold");
  lua_settop(L, 1);
  if (lock_try(L, c->lock, me)) return 1;
  return cr_wait_on(L, me, &c->lock->waiters, -1, 0, cond_hold_k);
}

static int cond_release(lua_State *L) {
  lock_release_(L, checkcond(L, 1)->lock);
  return 0;
}

static int cond_locked(lua_State *L) {
  lua_pushboolean(L, checkcond(L, 1)->lock->owner != NULL);
  return 1;
}

static int cond_tostring(lua_State *L) {
  lua_pushfstring(L, "corun.condition: %p", (void *)checkcond(L, 1));
  return 1;
}

static int sync_condition(lua_State *L) {
  cr_lock *k;
  cr_cond *c;
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    k = newlock(L, 0);
  }
  else {
    k = checklock(L, 1);
    lua_settop(L, 1);
  }
  c = (cr_cond *)lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->loop = cr_loop_get(L);
  c->lock = k;
  c->magic = CR_COND_MAGIC;
  cr_list_init(&c->waiters);
  luaL_setmetatable(L, CR_COND_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* }================================================================= */


/* {=================================================================
** barrier
** The states and transitions of asyncio's Barrier (Lib/asyncio/locks.py):
** - filling: arrivals are counted and park on 'waiters'; the arrival that
**   makes 'parties' trips it: the waiters are woken in arrival order, each
**   handed its index (0..parties-2, pushed on its stack), the tripping one
**   goes on at once with parties-1, and the barrier is draining.
** - draining: released tasks that have not resumed yet are still inside
**   ('count'); new arrivals park on 'blocked' until the last one leaves,
**   which makes it filling again and wakes them to arrive afresh.
** - resetting: reset() with tasks inside. Waiters are woken with "broken";
**   released tasks that resume now see "broken" too; arrivals are blocked
**   until the last task leaves (then filling). reset() with nobody inside
**   makes it filling at once.
** - broken: abort(), or a timed-out wait of the filling round (threading's
**   rule: a party is missing, the round can never complete). Every waiter,
**   blocked arrival, released task not yet resumed and later wait gets
**   "broken" until reset().
** A cancelled waiter just leaves the count (asyncio); it does not break the
** barrier. A waiter woken by a cancellation or a timeout leaves the wait
** list at once but the count only when it resumes, so a round trips only
** when 'parties - 1' tasks are really parked: the trip counts the linked
** waiters (O(parties), once per round, like the wake-ups it does). Every
** task inside is parked on 'waiters' or already ready, so draining and
** resetting always end and blocked arrivals always get another turn.
** ================================================================== */

enum { BAR_FILLING, BAR_DRAINING, BAR_RESETTING, BAR_BROKEN };

static const char *const barrier_states[] = {
  "filling", "draining", "resetting", "broken"
};

/* Continuation context: phase in bit 0, the arrival's cycle above it. */
#define BCTX(phase, cycle) ((lua_KContext)(phase) | ((lua_KContext)(cycle) << 1))
#define BCTX_PHASE(c) ((int)((c) & 1))
#define BCTX_CYCLE(c) ((unsigned)((lua_KContext)(c) >> 1))

enum { BPH_BLOCKED = 0, BPH_WAITING = 1 };

static void barrier_break(cr_barrier *b) {
  b->state = BAR_BROKEN;
  b->cycle++;
  cr_wait_wakeall(&b->waiters, CR_BROKEN);
  cr_wait_wakeall(&b->blocked, CR_OK);  /* they look again: broken */
}

/* A task leaves wait; the last one out ends draining or resetting. */
static void barrier_exit(cr_barrier *b) {
  if (--b->count > 0) return;
  if (b->state == BAR_DRAINING || b->state == BAR_RESETTING)
    b->state = BAR_FILLING;
  cr_wait_wakeall(&b->blocked, CR_OK);
}

static lua_Integer barrier_linked(cr_barrier *b) {
  return cr_wait_count(&b->waiters);
}

/* Release the parked waiters with their indices; the caller is the last. */
static void barrier_trip(lua_State *L, cr_barrier *b) {
  lua_Integer index = 0;
  b->state = BAR_DRAINING;
  b->cycle++;
  while (!cr_list_empty(&b->waiters)) {
    lua_pushinteger(L, index++);
    cr_wait_give(L, &b->waiters, -1);
    lua_pop(L, 1);
  }
  if (b->count == 0) b->state = BAR_FILLING;  /* barrier(1) */
}

static int barrier_k(lua_State *L, int status, lua_KContext ctx);

/* Arrive at 'b' (stack: barrier, deadline or nil), waiting at most
** 'timeout' (< 0: no limit). */
static int barrier_arrive(lua_State *L, cr_barrier *b, double timeout) {
  cr_task *me;
  if (b->state == BAR_BROKEN) return cr_pushfail(L, "broken");
  if (b->state == BAR_FILLING && b->count + 1 >= b->parties &&
      barrier_linked(b) + 1 == b->parties) {
    barrier_trip(L, b);
    lua_pushinteger(L, b->parties - 1);
    return 1;
  }
  me = cr_task_enter(L, b->loop, "wait");
  cr_task_checkcancel(L, me);
  if (b->state != BAR_FILLING)  /* draining or resetting: wait for the end */
    return cr_wait_on(L, me, &b->blocked, timeout,
                      BCTX(BPH_BLOCKED, 0), barrier_k);
  b->count++;
  return cr_wait_on(L, me, &b->waiters, timeout,
                    BCTX(BPH_WAITING, b->cycle), barrier_k);
}

static int barrier_k(lua_State *L, int status, lua_KContext ctx) {
  cr_barrier *b = checkbarrier(L, 1);
  cr_task *me = b->loop->current;
  int outcome = me->outcome;
  lua_Integer index = 0;
  (void)status;
  if (BCTX_PHASE(ctx) == BPH_BLOCKED) {  /* not counted: no bookkeeping */
    double timeout = -1;
    if (outcome != CR_OK) {
      if (cr_task_outcome(L, me) == CR_TIMEOUT)  /* raises Cancelled */
        return cr_pushfail(L, "timeout");
      return cr_pushfail(L, "broken");
    }
    lua_settop(L, 2);
    if (lua_isnumber(L, 2)) {
      timeout = lua_tonumber(L, 2) - cr_loop_now(b->loop);
      if (timeout < 0) timeout = 0;
    }
    return barrier_arrive(L, b, timeout);
  }
  if (outcome == CR_OK && lua_gettop(L) > 2) index = lua_tointeger(L, -1);
  lua_settop(L, 2);
  switch (outcome) {
    case CR_OK: {  /* released: unless reset or aborted before it resumed */
      int broken = b->state == BAR_RESETTING || b->state == BAR_BROKEN;
      barrier_exit(b);
      if (broken) return cr_pushfail(L, "broken");
      lua_pushinteger(L, index);
      return 1;
    }
    case CR_TIMEOUT:
      if (b->state == BAR_FILLING && b->cycle == BCTX_CYCLE(ctx))
        barrier_break(b);  /* its round can no longer fill */
      barrier_exit(b);
      return cr_pushfail(L, "timeout");
    case CR_CANCELLED:
      barrier_exit(b);
      return cr_task_outcome(L, me);  /* raises */
    default:
      barrier_exit(b);
      return cr_pushfail(L, "broken");
  }
}

static int barrier_wait(lua_State *L) {
  cr_barrier *b = checkbarrier(L, 1);
  double timeout = cr_opttimeout(L, 2);
  lua_settop(L, 1);
  if (timeout >= 0) lua_pushnumber(L, cr_loop_now(b->loop) + timeout);
  else lua_pushnil(L);
  return barrier_arrive(L, b, timeout);
}

static int barrier_reset(lua_State *L) {
  cr_barrier *b = checkbarrier(L, 1);
  b->cycle++;
  if (b->count > 0) {
    b->state = BAR_RESETTING;
    cr_wait_wakeall(&b->waiters, CR_BROKEN);
  }
  else {
    b->state = BAR_FILLING;
    cr_wait_wakeall(&b->blocked, CR_OK);
  }
  return 0;
}

static int barrier_abort(lua_State *L) {
  barrier_break(checkbarrier(L, 1));
  return 0;
}

static int barrier_parties(lua_State *L) {
  lua_pushinteger(L, checkbarrier(L, 1)->parties);
  return 1;
}

/* Tasks waiting for the round to fill (asyncio: 0 unless filling). */
static int barrier_n_waiting(lua_State *L) {
  cr_barrier *b = checkbarrier(L, 1);
  lua_pushinteger(L, b->state == BAR_FILLING ? b->count : 0);
  return 1;
}

static int barrier_broken(lua_State *L) {
  lua_pushboolean(L, checkbarrier(L, 1)->state == BAR_BROKEN);
  return 1;
}

static int barrier_state(lua_State *L) {
  lua_pushstring(L, barrier_states[checkbarrier(L, 1)->state]);
  return 1;
}

static int barrier_tostring(lua_State *L) {
  cr_barrier *b = checkbarrier(L, 1);
  lua_pushfstring(L, "corun.barrier (%s, %d/%d): %p",
                  barrier_states[b->state],
                  (int)(b->state == BAR_FILLING ? b->count : 0),
                  (int)b->parties, (void *)b);
  return 1;
}

static int sync_barrier(lua_State *L) {
  lua_Integer n = checkcount(L, 1, 1, "barrier");
  cr_barrier *b = (cr_barrier *)lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  b->loop = cr_loop_get(L);
  b->parties = n;
  b->magic = CR_BARRIER_MAGIC;
  cr_list_init(&b->waiters);
  cr_list_init(&b->blocked);
  luaL_setmetatable(L, CR_BARRIER_MT);
  return 1;
}

/* }================================================================= */


void cr_sync_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"lock", sync_lock},
    {"rlock", sync_rlock},
    {"semaphore", sync_semaphore},
    {"bounded_semaphore", sync_bounded_semaphore},
    {"event", sync_event},
    {"condition", sync_condition},
    {"barrier", sync_barrier},
    {NULL, NULL}
  };
  static const luaL_Reg lockmeta[] = {
    {"__tostring", lock_tostring}, {"__close", lock_release}, {NULL, NULL}
  };
  static const luaL_Reg lockm[] = {
    {"acquire", lock_acquire}, {"release", lock_release},
    {"locked", lock_locked}, {"hold", lock_hold}, {NULL, NULL}
  };
  static const luaL_Reg semmeta[] = {
    {"__tostring", sem_tostring}, {"__close", sem_release}, {NULL, NULL}
  };
  static const luaL_Reg semm[] = {
    {"acquire", sem_acquire}, {"release", sem_release},
    {"value", sem_value}, {"locked", sem_locked}, {"hold", sem_hold},
    {NULL, NULL}
  };
  static const luaL_Reg eventmeta[] = {
    {"__tostring", event_tostring}, {NULL, NULL}
  };
  static const luaL_Reg eventm[] = {
    {"set", event_set}, {"clear", event_clear}, {"is_set", event_is_set},
    {"wait", event_wait}, {NULL, NULL}
  };
  static const luaL_Reg condmeta[] = {
    {"__tostring", cond_tostring}, {"__close", cond_release}, {NULL, NULL}
  };
  static const luaL_Reg condm[] = {
    {"acquire", cond_acquire}, {"release", cond_release},
    {"locked", cond_locked}, {"hold", cond_hold}, {"wait", cond_wait},
    {"notify", cond_notify}, {"notify_all", cond_notify_all}, {NULL, NULL}
  };
  static const luaL_Reg barriermeta[] = {
    {"__tostring", barrier_tostring}, {NULL, NULL}
  };
  static const luaL_Reg barrierm[] = {
    {"wait", barrier_wait}, {"reset", barrier_reset},
    {"abort", barrier_abort}, {"parties", barrier_parties},
    {"n_waiting", barrier_n_waiting}, {"broken", barrier_broken},
    {"state", barrier_state}, {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  cr_newclass(L, CR_LOCK_MT, lockmeta, lockm, loopidx);
  cr_newclass(L, CR_SEM_MT, semmeta, semm, loopidx);
  cr_newclass(L, CR_EVENT_MT, eventmeta, eventm, loopidx);
  cr_newclass(L, CR_COND_MT, condmeta, condm, loopidx);
  cr_newclass(L, CR_BARRIER_MT, barriermeta, barrierm, loopidx);
}
