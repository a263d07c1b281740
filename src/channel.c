/*
** channel.c
** Channels and select. Tasks and plain threads wait on a channel through
** wait groups (waitgroup.c).
**
** Lock order: a channel's mutex, then a loop handle's or a group's mutex.
** Only select holds several channel mutexes, taken in address order.
**
** Channels: a ring of encoded messages (capacity -1: unbounded, 0:
** rendezvous), and FIFO lists of waiting receive and send cases. A send
** with a receiver waiting hands the message over; a receive that frees a
** slot moves the first waiting sender's offer into the ring. The ring's
** slots (cr_msgslot) hold small messages in place, so a send and a
** receive of one allocate nothing; a message is encoded before and
** decoded after the channel's mutex is held.
*/

#define _GNU_SOURCE           /* PTHREAD_MUTEX_ADAPTIVE_NP */

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "corun.h"

#define CR_CHAN_MT "corun.channel"

typedef struct cr_chan {
  cr_lockable lk;             /* its shared head and mutex */
  cr_msgslot *ring;           /* owned: buffered messages */
  int head, n, cap;           /* cap: 0 or a power of 2 */
  long capacity;              /* -1: unbounded; 0: rendezvous */
  int closed;
  cr_list recvq, sendq;       /* cr_case, FIFO */
} cr_chan;

/* {=================================================================
** Channels
** ================================================================== */

/* Complete the first live case of list 'q' (caller holds the mutex). */
static cr_case *complete_first(cr_list *q, int outcome, cr_msgslot *msg) {
  cr_list *n = q->next;
  while (n != q) {
    cr_list *next = n->next;
    cr_case *c = cr_container_of(n, cr_case, node);
    if (cr_wait_complete(c, outcome, msg)) return c;
    n = next;
  }
  return NULL;
}

static void chan_destroy(cr_shared *s) {
  cr_chan *ch = (cr_chan *)s;
  while (ch->n > 0) {
    cr_codec_free_slot(&ch->ring[ch->head]);
    ch->head = (ch->head + 1) & (ch->cap - 1);
    ch->n--;
  }
  free(ch->ring);
  uv_mutex_destroy(&ch->lk.mu);
  free(ch);
}

static const cr_shared_type chan_type = { CR_CHAN_MT, chan_destroy };

/* A channel's mutex is held for a few dozen instructions by threads that
** come back to it every microsecond: glibc's adaptive mutex spins a
** little before it sleeps, where a plain one makes a futex call on most
** collisions. */
static int chan_mutex_init(uv_mutex_t *mu) {
#if defined(__GLIBC__) && defined(__USE_GNU) && !defined(_WIN32)
  pthread_mutexattr_t attr;
  int r;
  if (pthread_mutexattr_init(&attr) != 0) return -1;
  r = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP) != 0 ||
      pthread_mutex_init(mu, &attr) != 0;
  pthread_mutexattr_destroy(&attr);
  return r ? -1 : 0;
#else
  return uv_mutex_init(mu);
#endif
}

/* The channel at 1. send, recv and the iter step have the address of
** the channel metatable (which the registry keeps) as upvalue 2: a full
** userdata with that metatable is a channel's box, found with no lookup
** by name; any other value takes the general check. */
static cr_chan *checkchan(lua_State *L) {
  cr_shared **box = (cr_shared **)lua_touserdata(L, 1);
  if (box != NULL && lua_getmetatable(L, 1)) {
    int same = lua_topointer(L, -1) == lua_touserdata(L, lua_upvalueindex(2));
    lua_pop(L, 1);
    if (same && *box != NULL) return (cr_chan *)*box;
  }
  return (cr_chan *)cr_shared_check(L, 1, &chan_type);
}

/* Move 'm' to the end of the ring (caller holds the mutex). -1 on
** ENOMEM. */
static int ring_push(cr_chan *ch, const cr_msgslot *m) {
  if (ch->n == ch->cap) {
    int i, cap = ch->cap ? ch->cap * 2 : 16;
    cr_msgslot *r = (cr_msgslot *)malloc((size_t)cap * sizeof *r);
    if (r == NULL) return -1;
    for (i = 0; i < ch->n; i++)
      r[i] = ch->ring[(ch->head + i) & (ch->cap - 1)];
    free(ch->ring);
    ch->ring = r;
    ch->head = 0;
    ch->cap = cap;
  }
  ch->ring[(ch->head + ch->n++) & (ch->cap - 1)] = *m;
  return 0;
}

/* Move the first message of the ring to '*m'. A ring of more than
** RINGKEEP slots is released once empty (with no sender waiting, whose
** offer would need a slot at once: never so, since senders wait only on
** a full ring). */
#define RINGKEEP 1024
static void ring_pop(cr_chan *ch, cr_msgslot *m) {
  *m = ch->ring[ch->head];
  ch->head = (ch->head + 1) & (ch->cap - 1);
  if (--ch->n == 0 && ch->cap > RINGKEEP && cr_list_empty(&ch->sendq)) {
    free(ch->ring);
    ch->ring = NULL;
    ch->head = ch->cap = 0;
  }
}

/* Take the offer of the first live sender into '*m' (caller holds the
** mutex): 1 taken, 0 none. */
static int take_offer(cr_chan *ch, cr_msgslot *m) {
  cr_list *n = ch->sendq.next;
  while (n != &ch->sendq) {
    cr_list *next = n->next;
    cr_case *c = cr_container_of(n, cr_case, node);
    *m = c->offer;  /* read before: the owner may go once it fired */
    if (cr_wait_complete(c, CR_OK, NULL)) return 1;
    n = next;
  }
  return 0;
}

/* Send 'm' now if possible (caller holds the mutex): 1 sent (moved out of
** 'm'), 0 must wait, -1 closed, -2 out of memory. */
static int try_send(cr_chan *ch, cr_msgslot *m) {
  if (ch->closed) return -1;
  if (complete_first(&ch->recvq, CR_OK, m) != NULL) return 1;
  if (ch->capacity < 0 || ch->n < ch->capacity)
    return ring_push(ch, m) == 0 ? 1 : -2;
  return 0;
}

/* Receive now if possible (caller holds the mutex): 1 got '*m', 0 must
** wait, -1 closed and drained. */
static int try_recv(cr_chan *ch, cr_msgslot *m) {
  if (ch->n > 0) {
    cr_msgslot offer;
    ring_pop(ch, m);
    if (take_offer(ch, &offer) && ring_push(ch, &offer) != 0)
      cr_codec_free_slot(&offer);  /* cannot happen: a slot was just freed */
    return 1;
  }
  if (take_offer(ch, m)) return 1;
  return ch->closed ? -1 : 0;
}

/* Push the value of message 'm' and free it. */
static int pushmsg(lua_State *L, cr_msgslot *m) {
  int n = cr_codec_decode_slot(L, m, CR_CODEC_FUNCTIONS);
  cr_codec_free_slot(m);
  return n;
}

/* What a parked task gets: ctx 's' send, 'r' recv, 'i' iter step. */
static int chan_k(lua_State *L, int status, lua_KContext ctx) {
  cr_task *me = cr_loop_get(L)->current;
  cr_wgroup *g = me->wg;
  int outcome = g->outcome;
  cr_msgslot m = g->msg;
  (void)status;
  cr_task_setgroup(me, NULL);
  g->msg.big = NULL;  /* moved to m */
  g->msg.len = 0;
  if (me->outcome != CR_OK) {  /* timed out or cancelled: the owner won */
    cr_wait_free(g);
    cr_task_outcome(L, me);  /* raises Cancelled */
    return cr_pushfail(L, "timeout");
  }
  cr_wait_free(g);
  if (outcome == CR_CLOSED) return ctx == 'i' ? 0 : cr_pushfail(L, "closed");
  if (ctx == 's') {
    lua_pushboolean(L, 1);
    return 1;
  }
  return pushmsg(L, &m);
}

static int chan_send(lua_State *L) {
  cr_chan *ch = checkchan(L);
  cr_loop *lp = cr_loop_get(L);
  double timeout = cr_opttimeout(L, 3);
  cr_task *me;
  cr_wgroup *g = NULL;
  cr_msgslot m;
  int r;
  int mode;
  luaL_checkany(L, 2);
  luaL_argcheck(L, !lua_isnil(L, 2), 2, "nil cannot be sent");
  mode = cr_wait_mode(L, lp, "send", &me);
  cr_codec_encode_slot(L, 2, 1, "value", CR_CODEC_FUNCTIONS, &m);
  uv_mutex_lock(&ch->lk.mu);
  r = try_send(ch, &m);
  if (r == 0 && timeout != 0 && mode < 0) r = -3;
  if (r == 0 && timeout != 0) {
    g = cr_wait_new(me, 1);
    if (g == NULL) r = -2;
    else {
      g->cases[0].offer = m;  /* moved: the group owns it */
      g->cases[0].send = 1;
      cr_wait_link(&g->cases[0], &ch->lk, &ch->sendq);
    }
  }
  uv_mutex_unlock(&ch->lk.mu);
  if (r != 1 && g == NULL) cr_codec_free_slot(&m);
  switch (r) {
    case 1: lua_pushboolean(L, 1); return 1;
    case -1: return cr_pushfail(L, "closed");
    case -2: return luaL_error(L, "send: not enough memory");
    case -3: return cr_wait_wouldblock(L, "send");
  }
  if (timeout == 0) return cr_pushfail(L, "timeout");
  if (me != NULL) return cr_wait_park(L, me, g, timeout, 's', chan_k);
  r = cr_wait_block(g, timeout);
  cr_wait_free(g);
  if (r == CR_TIMEOUT) return cr_pushfail(L, "timeout");
  if (r == CR_CLOSED) return cr_pushfail(L, "closed");
  lua_pushboolean(L, 1);
  return 1;
}

/* recv: ctx 'r' (value | nil,why) or 'i' (the iter step: value | nothing). */
static int recv_(lua_State *L, double timeout, lua_KContext ctx) {
  cr_chan *ch = checkchan(L);
  cr_loop *lp = cr_loop_get(L);
  const char *fname = ctx == 'i' ? "iter" : "recv";
  cr_task *me;
  int mode = cr_wait_mode(L, lp, fname, &me);
  cr_wgroup *g = NULL;
  cr_msgslot m;
  int r;
  uv_mutex_lock(&ch->lk.mu);
  r = try_recv(ch, &m);
  if (r == 0 && timeout != 0 && mode < 0) r = -3;
  if (r == 0 && timeout != 0) {
    g = cr_wait_new(me, 1);
    if (g == NULL) r = -2;
    else cr_wait_link(&g->cases[0], &ch->lk, &ch->recvq);
  }
  uv_mutex_unlock(&ch->lk.mu);
  switch (r) {
    case 1: return pushmsg(L, &m);
    case -1: return ctx == 'i' ? 0 : cr_pushfail(L, "closed");
    case -2: return luaL_error(L, "recv: not enough memory");
    case -3: return cr_wait_wouldblock(L, fname);
  }
  if (timeout == 0) return cr_pushfail(L, "timeout");
  lua_settop(L, 1);
  if (me != NULL) return cr_wait_park(L, me, g, timeout, ctx, chan_k);
  r = cr_wait_block(g, timeout);
  m = g->msg;
  g->msg.big = NULL;  /* moved to m */
  g->msg.len = 0;
  cr_wait_free(g);
  if (r == CR_TIMEOUT) return cr_pushfail(L, "timeout");
  if (r == CR_CLOSED) return ctx == 'i' ? 0 : cr_pushfail(L, "closed");
  return pushmsg(L, &m);
}

static int chan_recv(lua_State *L) {
  return recv_(L, cr_opttimeout(L, 2), 'r');
}

static int chan_next(lua_State *L) {
  return recv_(L, -1, 'i');
}

static int chan_iter(lua_State *L) {
  checkchan(L);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  return 2;
}

static int chan_close(lua_State *L) {
  cr_chan *ch = checkchan(L);
  uv_mutex_lock(&ch->lk.mu);
  ch->closed = 1;
  while (complete_first(&ch->recvq, CR_CLOSED, NULL) != NULL) {}
  while (complete_first(&ch->sendq, CR_CLOSED, NULL) != NULL) {}
  uv_mutex_unlock(&ch->lk.mu);
  return 0;
}

static int chan_len(lua_State *L) {
  cr_chan *ch = checkchan(L);
  int n;
  uv_mutex_lock(&ch->lk.mu);
  n = ch->n;
  uv_mutex_unlock(&ch->lk.mu);
  lua_pushinteger(L, n);
  return 1;
}

static int chan_closed(lua_State *L) {
  cr_chan *ch = checkchan(L);
  int c;
  uv_mutex_lock(&ch->lk.mu);
  c = ch->closed;
  uv_mutex_unlock(&ch->lk.mu);
  lua_pushboolean(L, c);
  return 1;
}

static int chan_tostring(lua_State *L) {
  cr_chan *ch = checkchan(L);
  lua_pushfstring(L, "corun.channel (capacity %d): %p", (int)ch->capacity,
                  (void *)ch);
  return 1;
}

/* corun.channel([capacity]): nil unbounded, 0 rendezvous. */
static int chan_new(lua_State *L) {
  lua_Integer cap = -1;
  cr_chan *ch;
  if (!lua_isnoneornil(L, 1)) {
    cap = luaL_checkinteger(L, 1);
    luaL_argcheck(L, cap >= 0 && cap <= 0x7fffffff, 1,
                  "capacity must be >= 0 and <= 2147483647");
  }
  ch = (cr_chan *)calloc(1, sizeof *ch);
  if (ch == NULL || chan_mutex_init(&ch->lk.mu) != 0) {
    free(ch);
    return luaL_error(L, "channel: not enough memory");
  }
  cr_shared_init(&ch->lk.base, &chan_type);
  ch->capacity = (long)cap;
  cr_list_init(&ch->recvq);
  cr_list_init(&ch->sendq);
  cr_shared_push(L, &ch->lk.base);
  return 1;
}

/* {=================================================================
** select: one wait group over several channel cases. The channels are
** locked together, in address order (the only place holding several
** channel mutexes), so polling and linking all cases is atomic; the cases
** are polled from a random start, so that no ready case starves.
** ================================================================== */

#define MAXCASES 64

typedef struct selcase {
  cr_chan *ch;                /* a channel case, or NULL: a queue case */
  int send;                   /* send / put */
  int index;                  /* 0-based position (argument index + 1) */
} selcase;

static int bychan(const void *a, const void *b) {
  const cr_chan *x = ((const selcase *)a)->ch, *y = ((const selcase *)b)->ch;
  return (x > y) - (x < y);
}

/* Lock (or unlock) the channels of 'sorted' (queue cases, NULL, first). */
static void lockall(selcase *sorted, int n, int lock) {
  int i;
  for (i = 0; i < n; i++) {
    if (sorted[i].ch == NULL) continue;
    if (i > 0 && sorted[i].ch == sorted[i - 1].ch) continue;
    if (lock) uv_mutex_lock(&sorted[i].ch->lk.mu);
    else uv_mutex_unlock(&sorted[i].ch->lk.mu);
  }
}

static unsigned nextrand(void) {
  static _Atomic unsigned state = 2463534242u;
  unsigned x = atomic_load_explicit(&state, memory_order_relaxed);
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  atomic_store_explicit(&state, x, memory_order_relaxed);
  return x;
}

/* Push the result of case 'i' (0-based): i+1 and then the received value
** (already on top for a queue get: 'have'), true for a send, or nil,
** "closed". */
static int selresult(lua_State *L, int i, int outcome, cr_msgslot *m,
                     int send, int have) {
  if (outcome == CR_CLOSED) {
    lua_pushinteger(L, i + 1);
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 3;
  }
  if (send) {
    lua_pushinteger(L, i + 1);
    lua_pushboolean(L, 1);
    return 2;
  }
  if (have) {
    lua_pushinteger(L, i + 1);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushinteger(L, i + 1);
  return 1 + pushmsg(L, m);
}

static int select_k(lua_State *L, int status, lua_KContext ctx) {
  cr_task *me = cr_loop_get(L)->current;
  cr_wgroup *g = me->wg;
  int which = g->which, outcome = g->outcome, send = 0, queue = 0;
  cr_msgslot m = g->msg;
  (void)status; (void)ctx;
  cr_task_setgroup(me, NULL);
  g->msg.big = NULL;  /* moved to m */
  g->msg.len = 0;
  if (which >= 0) {
    send = g->cases[which].send;
    queue = g->cases[which].queue;
  }
  cr_wait_free(g);
  if (me->outcome != CR_OK) {
    cr_task_outcome(L, me);  /* raises Cancelled */
    return cr_pushfail(L, "timeout");
  }
  return selresult(L, which, outcome, &m, send, queue && !send);
}

/* Check case table 'arg': {channel, "recv"}, {channel, "send", v},
** {queue, "get"} or {queue, "put", v}. */
static void checkcase(lua_State *L, int arg, selcase *c) {
  const char *op;
  int isq;
  luaL_argcheck(L, lua_type(L, arg) == LUA_TTABLE, arg,
                "case expected (e.g. {ch, \"recv\"} or {q, \"put\", v})");
  lua_rawgeti(L, arg, 1);
  c->ch = (cr_chan *)cr_shared_test(L, -1);
  isq = cr_queue_test(L, -1);
  if (!isq && (c->ch == NULL || c->ch->lk.base.type != &chan_type))
    luaL_argerror(L, arg, lua_pushfstring(L, "case %d: its field 1 must be "
                  "a channel or a queue, got %s", arg, luaL_typename(L, -1)));
  lua_rawgeti(L, arg, 2);
  op = lua_tostring(L, -1);
  if (op == NULL || (strcmp(op, "recv") != 0 && strcmp(op, "send") != 0 &&
                     strcmp(op, "get") != 0 && strcmp(op, "put") != 0))
    luaL_argerror(L, arg, lua_pushfstring(L, "case %d: its field 2 must be "
                  "\"recv\", \"send\", \"get\" or \"put\", got %s%s%s", arg,
                  op != NULL ? "\"" : "", op != NULL ? op : "nil",
                  op != NULL ? "\"" : ""));
  c->send = op[0] == 's' || op[0] == 'p';
  c->index = arg - 1;
  if (isq) {
    c->ch = NULL;
    if (c->send && cr_queue_is_priority(L, -2))
      luaL_argerror(L, arg, lua_pushfstring(L, "case %d: put cases on a "
                    "priority queue are not supported", arg));
  }
  if (c->send) {
    lua_rawgeti(L, arg, 3);
    if (lua_isnil(L, -1))
      luaL_argerror(L, arg, lua_pushfstring(L, "case %d: its field 3, the "
                    "value to send, is nil (nil cannot be sent)", arg));
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

/* Poll the queue cases from a random start: 1 + index of the one done
** (its result pushed), else 0. */
static int pollqueues(lua_State *L, selcase *cases, int n, int *r) {
  int k, start = (int)(nextrand() % (unsigned)n);
  for (k = 0; k < n; k++) {
    selcase *c = &cases[(start + k) % n];
    if (c->ch != NULL) continue;
    lua_rawgeti(L, c->index + 1, 1);
    lua_rawgeti(L, c->index + 1, 3);
    *r = cr_queue_select_try(L, -2, c->send, -1);
    if (*r == 1 && !c->send) {  /* keep the item, drop queue and value */
      lua_insert(L, -3);
      lua_pop(L, 2);
    }
    else
      lua_pop(L, 2);
    if (*r != 0) return c->index + 1;
  }
  return 0;
}

static int chan_select(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  int n = lua_gettop(L), i, k, start, winner = -1, r = 0, nq = 0, mode;
  double timeout = -1;
  selcase cases[MAXCASES], sorted[MAXCASES];
  cr_msgslot offers[MAXCASES], m;
  cr_task *me;
  cr_wgroup *g = NULL;
  if (n > 0 && lua_type(L, n) == LUA_TNUMBER) timeout = cr_opttimeout(L, n--);
  luaL_argcheck(L, n >= 1, 1, "at least one case expected");
  luaL_argcheck(L, n <= MAXCASES, MAXCASES + 1, "too many cases");
  lua_settop(L, n);
  for (i = 0; i < n; i++) {
    checkcase(L, i + 1, &cases[i]);
    nq += cases[i].ch == NULL;
  }
  mode = cr_wait_mode(L, lp, "select", &me);
  if (nq > 0 && me == NULL)
    return luaL_error(L, "select: queue cases need a task");
  if (nq > 0 && (winner = pollqueues(L, cases, n, &r)) > 0)
    return selresult(L, winner - 1, r == -1 ? CR_CLOSED : CR_OK, NULL,
                     cases[winner - 1].send, 1);
  winner = -1;
  memset(offers, 0, (size_t)n * sizeof *offers);  /* empty slots */
  for (i = 0; i < n; i++) {  /* encode what is sent (may raise) */
    if (!cases[i].send || cases[i].ch == NULL) continue;
    lua_rawgeti(L, i + 1, 3);
    cr_codec_encode_slot(L, lua_gettop(L), 1, "value", CR_CODEC_FUNCTIONS,
                         &offers[i]);
    lua_pop(L, 1);
  }
  memcpy(sorted, cases, n * sizeof *cases);
  qsort(sorted, n, sizeof *sorted, bychan);
  lockall(sorted, n, 1);
  start = (int)(nextrand() % (unsigned)n);
  for (k = 0; k < n && winner < 0; k++) {
    i = (start + k) % n;
    if (cases[i].ch == NULL) continue;
    r = cases[i].send ? try_send(cases[i].ch, &offers[i])
                      : try_recv(cases[i].ch, &m);
    if (r != 0) winner = i;
  }
  if (winner < 0 && timeout != 0 && mode >= 0) {
    g = cr_wait_new(me, n);
    for (i = 0; g != NULL && i < n; i++) {
      g->cases[i].send = cases[i].send;
      if (cases[i].ch == NULL) continue;  /* linked below */
      g->cases[i].offer = offers[i];  /* moved: the group owns it */
      memset(&offers[i], 0, sizeof offers[i]);
      cr_wait_link(&g->cases[i], &cases[i].ch->lk,
                   cases[i].send ? &cases[i].ch->sendq : &cases[i].ch->recvq);
    }
  }
  lockall(sorted, n, 0);
  if (winner >= 0 && cases[winner].send && r == 1)
    memset(&offers[winner], 0, sizeof offers[winner]);  /* sent: moved */
  for (i = 0; i < n; i++) cr_codec_free_slot(&offers[i]);
  if (winner >= 0) {
    if (r == -2) return luaL_error(L, "select: not enough memory");
    return selresult(L, winner, r == -1 ? CR_CLOSED : CR_OK, &m,
                     cases[winner].send, 0);
  }
  if (timeout == 0) return cr_pushfail(L, "timeout");
  if (mode < 0) return cr_wait_wouldblock(L, "select");
  if (g == NULL) return luaL_error(L, "select: not enough memory");
  for (i = 0; i < n; i++) {  /* queue cases: this thread only, no lock */
    if (cases[i].ch != NULL) continue;
    lua_rawgeti(L, i + 1, 1);
    cr_queue_select_link(L, lua_gettop(L), cases[i].send, &g->cases[i]);
    lua_pop(L, 1);
  }
  if (me != NULL) return cr_wait_park(L, me, g, timeout, 'S', select_k);
  r = cr_wait_block(g, timeout);
  {
    int which = g->which, send = which >= 0 && g->cases[which].send;
    m = g->msg;
    g->msg.big = NULL;  /* moved to m */
    g->msg.len = 0;
    cr_wait_free(g);
    if (r == CR_TIMEOUT) return cr_pushfail(L, "timeout");
    return selresult(L, which, r, &m, send, 0);
  }
}

/* }================================================================= */

void cr_channel_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"channel", chan_new},
    {"select", chan_select},
    {NULL, NULL}
  };
  static const luaL_Reg meta[] = {
    {"__len", chan_len},
    {"__tostring", chan_tostring},
    {NULL, NULL}
  };
  static const luaL_Reg methods[] = {  /* and send, recv, iter below */
    {"close", chan_close},
    {"closed", chan_closed},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  cr_shared_newclass(L, &chan_type, meta, methods, loopidx);
  luaL_getmetatable(L, CR_CHAN_MT);
  lua_getfield(L, -1, "__index");  /* [.., mt, methods] */
  lua_pushvalue(L, loopidx);
  lua_pushlightuserdata(L, (void *)lua_topointer(L, -3));
  lua_pushcclosure(L, chan_send, 2);
  lua_setfield(L, -2, "send");
  lua_pushvalue(L, loopidx);
  lua_pushlightuserdata(L, (void *)lua_topointer(L, -3));
  lua_pushcclosure(L, chan_recv, 2);
  lua_setfield(L, -2, "recv");
  lua_pushvalue(L, loopidx);
  lua_pushvalue(L, loopidx);
  lua_pushlightuserdata(L, (void *)lua_topointer(L, -4));
  lua_pushcclosure(L, chan_next, 2);
  lua_pushcclosure(L, chan_iter, 2);
  lua_setfield(L, -2, "iter");
  lua_pop(L, 2);
}

/* }================================================================= */
