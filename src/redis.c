/*
** redis.c
** An asynchronous Redis client on hiredis and its libuv adapter.
**
** client:call(cmd, ...) sends the command and parks the task; hiredis
** calls back with the reply (in order, per connection), which is converted
** straight onto the waiting task's stack, and the task is woken. A request
** (rreq) is malloc'd and outlives a task that gave up (timeout, cancel):
** its callbacks then only count down and free it. When the connection is
** lost, hiredis calls every pending callback with no reply: each call
** returns nil, "connection lost", and the next call reconnects.
** Passwords never appear in messages or in tostring(client).
*/

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "corun.h"

#define CR_REDIS_MT "corun.redis"

typedef struct cr_redis {
  cr_loop *loop;
  redisAsyncContext *ac;      /* NULL while not connected */
  char *host, *path, *password;  /* owned */
  int port, db;
  int closed;
  int inflight;               /* replies awaited: keep the loop alive */
  int setup;                  /* AUTH / SELECT replies still due */
  cr_list setup_waiters;      /* tasks waiting for setup to succeed */
  char *setup_err;            /* why the last setup failed (owned) */
} cr_redis;

typedef struct glue {
  uv_poll_t poll;
  redisAsyncContext *ac;
  int events;
} glue;

typedef struct rreq {
  cr_list waiters;            /* the calling task */
  cr_task *task;              /* NULL once it gave up */
  int pending;                /* replies still to come */
  int n;                      /* replies expected */
  int base;                   /* task's stack top when it parked */
  int results;                /* pipeline: stack index of the results */
  int lost;                   /* the connection was lost (2: protocol) */
  char why[128];              /* lost == 2: hiredis's reason */
} rreq;

static cr_redis *checkredis(lua_State *L) {
  cr_redis *c = (cr_redis *)luaL_checkudata(L, 1, CR_REDIS_MT);
  if (c->closed) luaL_error(L, "the redis client is closed");
  return c;
}

/* {=================================================================
** Replies
** ================================================================== */

/* Push reply 'r' (a top-level error: nil, message; inside an array: a
** table {err = message}). Returns how many values were pushed. */
static int pushreply(lua_State *L, redisReply *r, int top) {
  size_t i;
  luaL_checkstack(L, 4, "reply too deep");
  switch (r->type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
      lua_pushlstring(L, r->str, r->len);
      return 1;
    case REDIS_REPLY_INTEGER:
      lua_pushinteger(L, (lua_Integer)r->integer);
      return 1;
    case REDIS_REPLY_ARRAY:
      lua_createtable(L, (int)r->elements, 0);
      for (i = 0; i < r->elements; i++) {
        pushreply(L, r->element[i], 0);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      return 1;
    case REDIS_REPLY_ERROR:
      if (top) {
        lua_pushnil(L);
        lua_pushlstring(L, r->str, r->len);
        return 2;
      }
      lua_createtable(L, 0, 1);
      lua_pushlstring(L, r->str, r->len);
      lua_setfield(L, -2, "err");
      return 1;
    default:  /* REDIS_REPLY_NIL */
      lua_pushnil(L);
      return 1;
  }
}

typedef struct conv {
  redisReply *r;
  rreq *q;
  lua_State *co;
} conv;

/* In a pcall on the loop's state: convert and hand to the task. */
static int conv_p(lua_State *L) {
  conv *cv = (conv *)lua_touserdata(L, 1);
  int n = pushreply(L, cv->r, cv->q->results == 0);
  lua_checkstack(cv->co, n + 1);
  lua_xmove(L, cv->co, n);
  if (cv->q->results != 0)  /* a pipeline: results[i] = reply */
    lua_rawseti(cv->co, cv->q->results, cv->q->n - cv->q->pending + 1);
  else
    cr_task_gave(cv->q->task, n);
  return 0;
}

/* An idle connection must not keep the loop alive: its poll handle is
** referenced only while replies are awaited. */
static void keepalive(cr_redis *c, int delta) {
  glue *g;
  c->inflight += delta;
  if (c->ac == NULL || (g = (glue *)c->ac->ev.data) == NULL) return;
  if (c->inflight > 0) uv_ref((uv_handle_t *)&g->poll);
  else uv_unref((uv_handle_t *)&g->poll);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  rreq *q = (rreq *)privdata;
  cr_redis *c = (cr_redis *)ac->data;
  if (c != NULL && c->inflight > 0) keepalive(c, -1);
  if (reply == NULL) {
    q->lost = 1;
    if (ac->c.err == REDIS_ERR_PROTOCOL && !q->why[0]) {
      q->lost = 2;
      snprintf(q->why, sizeof q->why, "%s", ac->c.errstr);
    }
  }
  else if (q->task != NULL && c != NULL) {
    lua_State *L = c->loop->L;
    conv cv;
    cv.r = (redisReply *)reply;
    cv.q = q;
    cv.co = q->task->co;
    lua_pushcfunction(L, conv_p);
    lua_pushlightuserdata(L, &cv);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {  /* out of memory */
      lua_pop(L, 1);
      q->lost = 1;
    }
  }
  if (--q->pending > 0) return;
  if (q->task != NULL && c != NULL) cr_task_wake(q->task, CR_OK);
  else free(q);
}

/* }================================================================= */


/* {=================================================================
** The event-loop glue (hiredis's own libuv adapter of this version drops
** poll errors, so a refused connection would never be noticed: here an
** error is handed to hiredis, which then finds the socket's error).
** ================================================================== */

static void on_poll(uv_poll_t *h, int status, int events) {
  glue *g = (glue *)h->data;
  redisAsyncContext *ac = g->ac;
  if (status < 0) events = g->events;  /* let hiredis see the error */
  if ((events & UV_WRITABLE) && g->ac != NULL) redisAsyncHandleWrite(ac);
  if ((events & UV_READABLE) && g->ac != NULL) redisAsyncHandleRead(ac);
}

static void glue_update(glue *g, int add, int ev) {
  int events = add ? g->events | ev : g->events & ~ev;
  if (events == g->events) return;
  g->events = events;
  if (events != 0) uv_poll_start(&g->poll, events, on_poll);
  else uv_poll_stop(&g->poll);
}

static void add_read(void *p) { glue_update((glue *)p, 1, UV_READABLE); }
static void del_read(void *p) { glue_update((glue *)p, 0, UV_READABLE); }
static void add_write(void *p) { glue_update((glue *)p, 1, UV_WRITABLE); }
static void del_write(void *p) { glue_update((glue *)p, 0, UV_WRITABLE); }

static void glue_closed(uv_handle_t *h) {
  free(h->data);
}

static void glue_cleanup(void *p) {
  glue *g = (glue *)p;
  g->ac = NULL;
  uv_close((uv_handle_t *)&g->poll, glue_closed);
}

static int attach(redisAsyncContext *ac, uv_loop_t *loop) {
  glue *g = (glue *)calloc(1, sizeof *g);
  if (g == NULL) return -1;
  if (uv_poll_init(loop, &g->poll, ac->c.fd) != 0) {
    free(g);
    return -1;
  }
  g->poll.data = g;
  uv_unref((uv_handle_t *)&g->poll);  /* see keepalive() */
  g->ac = ac;
  ac->ev.data = g;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = glue_cleanup;
  return 0;
}

/* }================================================================= */


/* {=================================================================
** Connecting
** ================================================================== */

/* Wake the tasks waiting for the connection's setup: each looks at the
** client's state again (ready, failed, or lost). */
static void setup_wake(cr_redis *c) {
  cr_wait_wakeall(&c->setup_waiters, CR_OK);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  cr_redis *c = (cr_redis *)ac->data;
  if (status != REDIS_OK && c != NULL && c->ac == ac) {
    c->ac = NULL;  /* hiredis frees it */
    c->inflight = 0;
    setup_wake(c);
  }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  cr_redis *c = (cr_redis *)ac->data;
  (void)status;
  if (c != NULL && c->ac == ac) {
    c->ac = NULL;
    c->inflight = 0;
    setup_wake(c);
  }
}

/* The reply to AUTH or SELECT. No command of the caller's is sent before
** every one succeeded; a failure drops the connection and the calls
** waiting for it return nil, the server's message: nothing runs as the
** wrong user or in the wrong db. */
static void on_setup(redisAsyncContext *ac, void *reply, void *privdata) {
  redisReply *r = (redisReply *)reply;
  cr_redis *c = (cr_redis *)ac->data;
  (void)privdata;
  if (c == NULL || c->ac != ac) return;  /* collected, or an old one */
  if (c->inflight > 0) keepalive(c, -1);
  if (r == NULL) return;  /* lost: on_disconnect wakes the waiters */
  if (r->type == REDIS_REPLY_ERROR) {
    free(c->setup_err);
    c->setup_err = (char *)malloc(r->len + 1);
    if (c->setup_err != NULL) {
      memcpy(c->setup_err, r->str, r->len);
      c->setup_err[r->len] = '\0';
    }
    c->ac = NULL;
    c->inflight = 0;
    c->setup = 0;
    redisAsyncDisconnect(ac);
    setup_wake(c);
    return;
  }
  if (--c->setup == 0) setup_wake(c);
}

/* Connect if not connected: 0, or -1 with the error message pushed. */
static int ensure(lua_State *L, cr_redis *c) {
  redisAsyncContext *ac;
  if (c->ac != NULL) return 0;
  ac = c->path != NULL ? redisAsyncConnectUnix(c->path)
                       : redisAsyncConnect(c->host, c->port);
  if (ac == NULL || ac->err) {
    lua_pushfstring(L, "cannot connect to redis: %s",
                    ac != NULL ? ac->errstr : "out of memory");
    if (ac != NULL) redisAsyncFree(ac);
    return -1;
  }
  ac->data = c;
  if (attach(ac, &c->loop->uv) != 0) {
    redisAsyncFree(ac);
    lua_pushliteral(L, "cannot connect to redis: libuv attach failed");
    return -1;
  }
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  c->ac = ac;
  c->setup = 0;
  free(c->setup_err);
  c->setup_err = NULL;
  if (c->password != NULL &&
      redisAsyncCommand(ac, on_setup, NULL, "AUTH %s", c->password) == REDIS_OK) {
    c->setup++;
    keepalive(c, 1);
  }
  if (c->db != 0 &&
      redisAsyncCommand(ac, on_setup, NULL, "SELECT %d", c->db) == REDIS_OK) {
    c->setup++;
    keepalive(c, 1);
  }
  return 0;
}

/* }================================================================= */


/* {=================================================================
** Calls and pipelines
** ================================================================== */

/* Check the words at first..last of command 'cmd' (0: a call): strings
** or numbers, at least one. Raises before anything is sent. */
static void checkwords(lua_State *L, int first, int last, lua_Integer cmd) {
  int i;
  if (last < first) {
    if (cmd == 0) luaL_error(L, "call: a command expected");
    luaL_error(L, "pipeline: command %d is empty", (int)cmd);
  }
  for (i = first; i <= last; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) {
      if (cmd == 0)
        luaL_error(L, "call: argument %d must be a string or a number",
                   i - first + 1);
      luaL_error(L, "pipeline: command %d: argument %d must be a string or "
                 "a number", (int)cmd, i - first + 1);
    }
  }
}

/* Send the command whose words (checked) are at first..last, with argv
** and lens room for them. */
static int sendcmd(lua_State *L, cr_redis *c, rreq *q, int first, int last,
                   const char **argv, size_t *lens) {
  int i, argc = last - first + 1;
  for (i = 0; i < argc; i++) argv[i] = lua_tolstring(L, first + i, &lens[i]);
  if (redisAsyncCommandArgv(c->ac, on_reply, q, argc, argv, lens) != REDIS_OK)
    return -1;
  keepalive(c, 1);  /* hiredis copied the command */
  return 0;
}

static int lost(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "connection lost");
  return 2;
}

static int call_k(lua_State *L, int status, lua_KContext ctx) {
  rreq *q = (rreq *)ctx;
  cr_task *me = cr_loop_get(L)->current;
  int n, base = q->base, islost = q->lost, results = q->results;
  int count = q->n;
  (void)status;
  if (me->outcome != CR_OK) {  /* timed out or cancelled: it frees q */
    q->task = NULL;
    cr_task_outcome(L, me);
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  n = lua_gettop(L) - base;
  if (islost == 2) {
    lua_pushnil(L);
    lua_pushfstring(L, "connection lost: protocol error: %s", q->why);
    free(q);
    return 2;
  }
  free(q);
  if (islost) return lost(L);
  if (results != 0) {
    lua_settop(L, results);
    lua_pushinteger(L, count);  /* nil replies leave holes: use .n */
    lua_setfield(L, results, "n");
    return 1;
  }
  return n;
}

/* Park 'me' on request 'q' (its replies counted in q->pending). */
static int park(lua_State *L, cr_task *me, rreq *q, double timeout) {
  q->task = me;
  q->base = lua_gettop(L);
  return cr_wait_on(L, me, &q->waiters, timeout, (lua_KContext)q, call_k);
}

static rreq *newreq(lua_State *L, int n) {
  rreq *q = (rreq *)calloc(1, sizeof *q);
  if (q == NULL) luaL_error(L, "redis: not enough memory");
  cr_list_init(&q->waiters);
  q->n = q->pending = n;
  return q;
}

static int send_call(lua_State *L, cr_redis *c, cr_task *me);
static int send_pipeline(lua_State *L, cr_redis *c, cr_task *me);

/* Resumed once the setup of the connection ended one way or another. */
static int setup_k(lua_State *L, int status, lua_KContext ctx) {
  cr_task *me = cr_loop_get(L)->current;
  cr_redis *c = (cr_redis *)luaL_checkudata(L, 1, CR_REDIS_MT);
  (void)status;
  if (me->outcome != CR_OK) {
    cr_task_outcome(L, me);
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  if (c->closed) return luaL_error(L, "the redis client is closed");
  return ctx == 0 ? send_call(L, c, me) : send_pipeline(L, c, me);
}

/* Whether commands may be sent now: 0 yes; 1 the setup is still running
** (park); -1 no connection: nil, message pushed (2 values). */
static int ready(lua_State *L, cr_redis *c) {
  if (c->ac != NULL) return c->setup > 0;
  lua_pushnil(L);
  if (c->setup_err != NULL) lua_pushstring(L, c->setup_err);
  else lua_pushliteral(L, "connection lost");
  return -1;
}

/* Send the call whose words are at 2..top and park; or wait for the
** connection's setup first. */
static int send_call(lua_State *L, cr_redis *c, cr_task *me) {
  int top = lua_gettop(L), r = ready(L, c);
  const char **argv;
  size_t *lens;
  rreq *q;
  if (r < 0) return 2;
  if (r > 0)
    return cr_wait_on(L, me, &c->setup_waiters, -1, 0, setup_k);
  argv = (const char **)lua_newuserdatauv(L, (top - 1) * sizeof *argv, 0);
  lens = (size_t *)lua_newuserdatauv(L, (top - 1) * sizeof *lens, 0);
  q = newreq(L, 1);
  if (sendcmd(L, c, q, 2, top, argv, lens) != 0) {
    free(q);
    return lost(L);
  }
  lua_settop(L, 1);
  return park(L, me, q, -1);
}

/* client:call(cmd, ...) -> reply | nil, message */
static int redis_call(lua_State *L) {
  cr_redis *c = checkredis(L);
  cr_task *me = cr_task_enter(L, c->loop, "call");
  int i, top = lua_gettop(L);
  cr_task_checkcancel(L, me);
  checkwords(L, 2, top, 0);
  for (i = 2; i <= top; i++) lua_tolstring(L, i, NULL);  /* numbers: text */
  if (ensure(L, c) != 0) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  return send_call(L, c, me);
}

/* Send the pipeline at 2 (checked; the results table at 3, the most
** words of a command at 4) and park; or wait for the setup first. */
static int send_pipeline(lua_State *L, cr_redis *c, cr_task *me) {
  lua_Integer i, n = luaL_len(L, 2);
  int maxw = (int)lua_tointeger(L, 4), r;
  const char **argv;
  size_t *lens;
  rreq *q;
  lua_settop(L, 4);
  r = ready(L, c);
  if (r < 0) return 2;
  if (r > 0)
    return cr_wait_on(L, me, &c->setup_waiters, -1, 1, setup_k);
  luaL_checkstack(L, maxw + 4, "command too long");
  argv = (const char **)lua_newuserdatauv(L, maxw * sizeof *argv, 0);
  lens = (size_t *)lua_newuserdatauv(L, maxw * sizeof *lens, 0);
  q = newreq(L, (int)n);
  q->results = 3;
  for (i = 1; i <= n; i++) {
    int top = lua_gettop(L), k, words;
    lua_rawgeti(L, 2, i);
    words = (int)lua_rawlen(L, -1);
    for (k = 1; k <= words; k++) lua_rawgeti(L, top + 1, k);
    if (sendcmd(L, c, q, top + 2, top + 1 + words, argv, lens) != 0) {
      q->pending -= (int)(n - i + 1);  /* those were never sent */
      q->lost = 1;
      lua_settop(L, top);
      if (q->pending == 0) {
        free(q);
        return lost(L);
      }
      break;
    }
    lua_settop(L, top);
  }
  lua_settop(L, 3);
  return park(L, me, q, -1);
}

/* client:_pipeline(list of commands) -> list of replies (an error reply
** is a table {err = message}). Every word of every command is checked
** before any is sent. */
static int redis_pipeline(lua_State *L) {
  cr_redis *c = checkredis(L);
  cr_task *me = cr_task_enter(L, c->loop, "pipeline");
  lua_Integer i, n;
  int maxw = 0;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = luaL_len(L, 2);
  cr_task_checkcancel(L, me);
  lua_settop(L, 2);
  luaL_argcheck(L, n <= 0x7fffffff, 2, "too many commands");
  for (i = 1; i <= n; i++) {
    int top = lua_gettop(L), k, words;
    lua_rawgeti(L, 2, i);
    luaL_argcheck(L, lua_istable(L, -1), 2, "a list of commands expected");
    words = (int)lua_rawlen(L, -1);
    luaL_checkstack(L, words, "command too long");
    for (k = 1; k <= words; k++) lua_rawgeti(L, top + 1, k);
    checkwords(L, top + 2, top + 1 + words, i);
    if (words > maxw) maxw = words;
    lua_settop(L, top);
  }
  lua_createtable(L, (int)n, 0);  /* the results, at 3 */
  if (n == 0) return 1;
  lua_pushinteger(L, maxw);       /* at 4 */
  if (ensure(L, c) != 0) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  return send_pipeline(L, c, me);
}

static void disconnect(cr_redis *c) {
  if (c->ac != NULL) {
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    redisAsyncDisconnect(ac);  /* pending replies still arrive */
  }
  setup_wake(c);  /* those waiting for the setup see the client closed */
}

static int redis_close(lua_State *L) {
  cr_redis *c = (cr_redis *)luaL_checkudata(L, 1, CR_REDIS_MT);
  if (!c->closed) {
    c->closed = 1;
    disconnect(c);
  }
  return 0;
}

static int redis_gc(lua_State *L) {
  cr_redis *c = (cr_redis *)lua_touserdata(L, 1);
  if (c->ac != NULL) {
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    ac->data = NULL;  /* callbacks now only free their requests */
    redisAsyncFree(ac);
  }
  free(c->host);
  free(c->path);
  free(c->password);
  free(c->setup_err);
  c->host = c->path = c->password = c->setup_err = NULL;
  return 0;
}

static int redis_tostring(lua_State *L) {
  cr_redis *c = (cr_redis *)luaL_checkudata(L, 1, CR_REDIS_MT);
  if (c->path != NULL)
    lua_pushfstring(L, "corun.redis client (unix:%s db %d)", c->path, c->db);
  else
    lua_pushfstring(L, "corun.redis client (%s:%d db %d)", c->host, c->port,
                    c->db);
  return 1;
}

static char *dupopt(lua_State *L, int idx) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  char *r;
  if (s == NULL) return NULL;
  r = (char *)malloc(n + 1);
  if (r == NULL) luaL_error(L, "redis: not enough memory");
  memcpy(r, s, n + 1);
  return r;
}

/* core.redis_client(host, port, path, password, db) -> client (it connects
** on its first call). The Lua layer parses URLs. */
static int redis_client(lua_State *L) {
  cr_redis *c = (cr_redis *)lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->loop = cr_loop_get(L);
  cr_list_init(&c->setup_waiters);
  luaL_setmetatable(L, CR_REDIS_MT);
  c->host = dupopt(L, 1);
  c->port = (int)luaL_optinteger(L, 2, 6379);
  c->path = dupopt(L, 3);
  c->password = dupopt(L, 4);
  c->db = (int)luaL_optinteger(L, 5, 0);
  if (c->host == NULL && c->path == NULL) {
    lua_pushliteral(L, "127.0.0.1");
    c->host = dupopt(L, -1);
    lua_pop(L, 1);
  }
  return 1;
}

/* }================================================================= */

void cr_redis_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"redis_client", redis_client},
    {NULL, NULL}
  };
  static const luaL_Reg meta[] = {
    {"__gc", redis_gc}, {"__close", redis_close},
    {"__tostring", redis_tostring}, {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"call", redis_call}, {"_pipeline", redis_pipeline},
    {"close", redis_close}, {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  cr_newclass(L, CR_REDIS_MT, meta, methods, loopidx);
}
