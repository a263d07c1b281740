/*
** thread.c
** OS threads, thread pools and loop handles (their futures: future.c).
**
** Every OS thread runs its own lua_State with its own loop; values cross
** only as codec messages. Each completes a future (future.c) with an
** encoded result or error. corun.thread(fn, ...) runs fn as the main task of a
** new state on a new thread and completes a future with its results; a
** pool's workers each keep one state and run each job as the main task of
** a corun.run in it. A loop handle lets other threads post callbacks and
** tasks to a loop (call_soon_threadsafe, submit).
**
** Lock order: a future's mutex, then a loop handle's or a group's mutex;
** a pool's mutex is never held with another.
*/

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>

#include <lualib.h>

#include "corun.h"

#define CR_LOOP_MTH  "corun.loophandle"
#define CR_POOL_MT   "corun.pool"

int luaopen_corun_core(lua_State *L);

/* {=================================================================
** A fresh Lua state for another thread
** ================================================================== */

/* The package paths a new state inherits. */
typedef struct paths {
  char *path, *cpath;
} paths;

static char *copyfield(lua_State *L, const char *k) {
  const char *s;
  char *r;
  size_t n;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, k);
  s = lua_tolstring(L, -1, &n);
  r = (char *)malloc(s != NULL ? n + 1 : 1);
  if (r != NULL) {
    if (s != NULL) memcpy(r, s, n + 1);
    else r[0] = '\0';
  }
  lua_pop(L, 2);
  return r;
}

static int paths_get(lua_State *L, paths *p) {
  p->path = copyfield(L, "path");
  p->cpath = copyfield(L, "cpath");
  return p->path != NULL && p->cpath != NULL;
}

static void paths_free(paths *p) {
  free(p->path);
  free(p->cpath);
}

static lua_State *newstate(const paths *p) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return NULL;
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, p->path);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, p->cpath);
  lua_setfield(L, -2, "cpath");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_corun_core);
  lua_setfield(L, -2, "corun.core");
  lua_pop(L, 2);
  return L;
}

/* In a pcall: run message 'call' (fn, args...) as the main task of a
** corun.run in this state; leaves the results on the stack. */
static int runcall(lua_State *L) {
  const cr_msg *call = (const cr_msg *)lua_touserdata(L, 1);
  int n;
  lua_settop(L, 0);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "corun.core");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "run");
  lua_remove(L, -2);
  lua_pushliteral(L, "thread");
  n = cr_codec_decode(L, call, CR_CODEC_FUNCTIONS);
  lua_call(L, n + 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* Run 'call' in L and complete 'f' with the outcome. */
static void runjob(lua_State *L, const cr_msg *call, cr_future *f) {
  lua_settop(L, 0);
  lua_pushcfunction(L, runcall);
  lua_pushlightuserdata(L, (void *)call);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) == LUA_OK)
    cr_future_resolve(L, f, lua_gettop(L));
  else
    cr_future_fail(L, f);
  lua_settop(L, 0);
}

/* }================================================================= */


/* {=================================================================
** corun.thread
** ================================================================== */

typedef struct thread_job {
  cr_post post;               /* "finished", posted to the parent loop */
  cr_msg *call;               /* owned: fn and its arguments */
  cr_future *fut;             /* owned reference */
  cr_lhandle *parent;         /* owned reference */
  paths p;
} thread_job;

static void job_free(thread_job *j) {
  if (j->call != NULL) cr_msg_free(j->call);
  cr_shared_release(&j->fut->lk.base);
  cr_shared_release(&j->parent->base);
  paths_free(&j->p);
  free(j);
}

static void finished_run(lua_State *L, cr_loop *lp, cr_post *p) {
  (void)L;
  cr_loop_remote(lp, -1);
  job_free((thread_job *)p);
}

static void finished_drop(cr_post *p) {
  job_free((thread_job *)p);
}

static void *thread_main(void *arg) {
  thread_job *j = (thread_job *)arg;
  lua_State *L = newstate(&j->p);
  if (L == NULL)
    cr_future_set(j->fut, FUT_FAILED, NULL);
  else {
    runjob(L, j->call, j->fut);
    lua_close(L);
  }
  cr_msg_free(j->call);
  j->call = NULL;
  if (cr_loop_post(j->parent, &j->post) != 0) job_free(j);
  return NULL;
}

/* corun.thread(fn, ...) -> a future; th:join is its wait. */
static int thread_new(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  thread_job *j;
  cr_future *f;
  pthread_t tid;
  pthread_attr_t attr;
  int r;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  j = (thread_job *)calloc(1, sizeof *j);
  if (j == NULL) return luaL_error(L, "thread: not enough memory");
  j->post.run = finished_run;
  j->post.drop = finished_drop;
  j->fut = cr_future_new();
  j->parent = lp->lh;
  cr_shared_retain(&j->parent->base);
  if (j->fut == NULL || !paths_get(L, &j->p)) {
    if (j->fut == NULL) j->fut = cr_future_new();  /* for job_free */
    job_free(j);
    return luaL_error(L, "thread: not enough memory");
  }
  lua_pushcfunction(L, cr_encode_p);  /* encode fn and args, protected */
  {
    cr_encoding e = { "args", CR_CODEC_FUNCTIONS, NULL };
    int n = lua_gettop(L) - 1;
    lua_pushlightuserdata(L, &e);
    lua_rotate(L, 1, 2);
    if (lua_pcall(L, n + 1, 0, 0) != LUA_OK) {
      job_free(j);
      return lua_error(L);
    }
    j->call = e.out;
  }
  f = j->fut;
  f->state = FUT_RUNNING;      /* a started thread cannot be cancelled */
  cr_shared_retain(&f->lk.base);  /* the box's: j may be gone once started */
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  r = pthread_create(&tid, &attr, thread_main, j);
  pthread_attr_destroy(&attr);
  if (r != 0) {
    cr_shared_release(&f->lk.base);
    job_free(j);
    return luaL_error(L, "thread: cannot start a thread");
  }
  cr_loop_remote(lp, 1);
  cr_shared_push(L, &f->lk.base);
  return 1;
}

/* }================================================================= */


/* {=================================================================
** Pools
** ================================================================== */

typedef struct pool_job {
  cr_list node;
  cr_msg *call;               /* owned */
  cr_future *fut;             /* owned reference */
} pool_job;

typedef struct cr_pool {
  _Atomic int refs;           /* the Lua object and each live worker */
  uv_mutex_t mu;
  uv_cond_t cond;             /* jobs arrived, or closed */
  cr_list jobs;
  int closed, nworkers, live;
  cr_future *finished;        /* completed when the last worker exits */
  paths p;
} cr_pool;

static void pool_release(cr_pool *p) {
  if (atomic_fetch_sub(&p->refs, 1) != 1) return;
  while (!cr_list_empty(&p->jobs)) {
    pool_job *j = cr_container_of(cr_list_shift(&p->jobs), pool_job, node);
    cr_msg_free(j->call);
    cr_shared_release(&j->fut->lk.base);
    free(j);
  }
  cr_shared_release(&p->finished->lk.base);
  paths_free(&p->p);
  uv_cond_destroy(&p->cond);
  uv_mutex_destroy(&p->mu);
  free(p);
}

/* The next job to run, or NULL once the pool is closed and drained. */
static pool_job *nextjob(cr_pool *p) {
  pool_job *j = NULL;
  uv_mutex_lock(&p->mu);
  while (j == NULL) {
    if (cr_list_empty(&p->jobs)) {
      if (p->closed) break;
      uv_cond_wait(&p->cond, &p->mu);
      continue;
    }
    j = cr_container_of(cr_list_shift(&p->jobs), pool_job, node);
    uv_mutex_lock(&j->fut->lk.mu);
    if (j->fut->state == FUT_PENDING) j->fut->state = FUT_RUNNING;
    else {  /* cancelled before it started */
      uv_mutex_unlock(&j->fut->lk.mu);
      cr_msg_free(j->call);
      cr_shared_release(&j->fut->lk.base);
      free(j);
      j = NULL;
      continue;
    }
    uv_mutex_unlock(&j->fut->lk.mu);
  }
  uv_mutex_unlock(&p->mu);
  return j;
}

static void *worker_main(void *arg) {
  cr_pool *p = (cr_pool *)arg;
  lua_State *L = newstate(&p->p);  /* one state per worker, reused */
  pool_job *j;
  int last;
  while ((j = nextjob(p)) != NULL) {
    if (L != NULL) runjob(L, j->call, j->fut);
    else cr_future_set(j->fut, FUT_FAILED, NULL);
    cr_msg_free(j->call);
    cr_shared_release(&j->fut->lk.base);
    free(j);
  }
  if (L != NULL) lua_close(L);
  uv_mutex_lock(&p->mu);
  last = --p->live == 0;
  uv_mutex_unlock(&p->mu);
  if (last) cr_future_set(p->finished, FUT_DONE, NULL);
  pool_release(p);
  return NULL;
}

static cr_pool **checkpoolbox(lua_State *L) {
  return (cr_pool **)luaL_checkudata(L, 1, CR_POOL_MT);
}

static cr_pool *checkpool(lua_State *L) {
  cr_pool **box = checkpoolbox(L);
  if (*box == NULL) luaL_error(L, "the pool has been collected");
  return *box;
}

static void pool_closejobs(cr_pool *p) {
  uv_mutex_lock(&p->mu);
  p->closed = 1;
  uv_cond_broadcast(&p->cond);
  uv_mutex_unlock(&p->mu);
}

/* pool:submit(fn, ...) -> future */
static int pool_submit(lua_State *L) {
  cr_pool *p = checkpool(L);
  pool_job *j;
  cr_future *f;
  int closed;
  cr_encoding e = { "args", CR_CODEC_FUNCTIONS, NULL };
  int n = lua_gettop(L) - 1;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushcfunction(L, cr_encode_p);
  lua_pushlightuserdata(L, &e);
  lua_rotate(L, 2, 2);
  lua_call(L, n + 1, 0);  /* raises if the arguments cannot be sent */
  j = (pool_job *)calloc(1, sizeof *j);
  if (j == NULL || (j->fut = cr_future_new()) == NULL) {
    free(j);
    cr_msg_free(e.out);
    return luaL_error(L, "submit: not enough memory");
  }
  j->call = e.out;
  f = j->fut;
  cr_shared_retain(&f->lk.base);  /* the box's: j may be gone once queued */
  uv_mutex_lock(&p->mu);
  closed = p->closed;
  if (!closed) {
    cr_list_push(&p->jobs, &j->node);
    uv_cond_signal(&p->cond);
  }
  uv_mutex_unlock(&p->mu);
  if (closed) {
    cr_shared_release(&f->lk.base);
    cr_msg_free(j->call);
    cr_shared_release(&j->fut->lk.base);
    free(j);
    return luaL_error(L, "submit: the pool is closed");
  }
  cr_shared_push(L, &f->lk.base);
  return 1;
}

static int pool_close(lua_State *L) {
  pool_closejobs(checkpool(L));
  return 0;
}

/* pool:_finished(): the future completed when the closed pool's workers
** have all exited (pool:join waits on it). */
static int pool_finished(lua_State *L) {
  cr_pool *p = checkpool(L);
  int closed;
  uv_mutex_lock(&p->mu);
  closed = p->closed;
  uv_mutex_unlock(&p->mu);
  if (!closed) return luaL_error(L, "join: close the pool first");
  cr_future_push(L, p->finished);
  return 1;
}

static int pool_size(lua_State *L) {
  lua_pushinteger(L, checkpool(L)->nworkers);
  return 1;
}

static int pool_gc(lua_State *L) {
  cr_pool **box = checkpoolbox(L);
  if (*box != NULL) {
    pool_closejobs(*box);  /* workers finish queued jobs, then exit */
    pool_release(*box);
    *box = NULL;
  }
  return 0;
}

static int pool_tostring(lua_State *L) {
  cr_pool *p = checkpool(L);
  lua_pushfstring(L, "corun.pool (%d workers): %p", p->nworkers, (void *)p);
  return 1;
}

/* corun.pool([n]): n worker threads (default: the number of CPUs). */
static int pool_new(lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 1, (lua_Integer)uv_available_parallelism());
  cr_pool **box, *p;
  int i;
  luaL_argcheck(L, n >= 1 && n <= 1024, 1, "size must be 1..1024");
  box = (cr_pool **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, CR_POOL_MT);
  p = (cr_pool *)calloc(1, sizeof *p);
  if (p == NULL || uv_mutex_init(&p->mu) != 0) {
    free(p);
    return luaL_error(L, "pool: not enough memory");
  }
  uv_cond_init(&p->cond);
  cr_list_init(&p->jobs);
  atomic_init(&p->refs, 1);
  p->finished = cr_future_new();
  paths_get(L, &p->p);
  *box = p;
  for (i = 0; i < n; i++) {
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&p->refs, 1);
    uv_mutex_lock(&p->mu);
    p->live++;
    p->nworkers++;
    uv_mutex_unlock(&p->mu);
    if (pthread_create(&tid, &attr, worker_main, p) != 0) {
      uv_mutex_lock(&p->mu);
      p->live--;
      p->nworkers--;
      uv_mutex_unlock(&p->mu);
      atomic_fetch_sub(&p->refs, 1);
    }
    pthread_attr_destroy(&attr);
  }
  if (p->nworkers == 0) return luaL_error(L, "pool: cannot start threads");
  return 1;
}

/* }================================================================= */


/* {=================================================================
** Loop handles: corun.loop()
** ================================================================== */

typedef struct call_post {
  cr_post post;
  cr_msg *call;               /* owned: fn and args */
  cr_future *fut;             /* submit: owned reference; else NULL */
} call_post;

static void call_free(call_post *c) {
  if (c->call != NULL) cr_msg_free(c->call);
  if (c->fut != NULL) cr_shared_release(&c->fut->lk.base);
  free(c);
}

/* The task body of loop:submit: fn(...) then complete the future. */
static int submit_done(lua_State *L, int status, lua_KContext ctx) {
  cr_future *f = (cr_future *)ctx;
  if (status == LUA_OK || status == LUA_YIELD)
    cr_future_resolve(L, f, lua_gettop(L) - 1);
  else
    cr_future_fail(L, f);
  cr_shared_release(&f->lk.base);
  return 0;
}

static int msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) return 1;
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int submit_body(lua_State *L) {
  cr_future *f = (cr_future *)lua_touserdata(L, lua_upvalueindex(1));
  lua_pushcfunction(L, msgh);
  lua_insert(L, 1);
  return submit_done(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 1,
                                   (lua_KContext)f, submit_done),
                     (lua_KContext)f);
}

/* In the target loop: decode fn and args, then call soon / spawn. */
static int call_p(lua_State *L) {
  call_post *c = (call_post *)lua_touserdata(L, 1);
  cr_loop *lp = (cr_loop *)lua_touserdata(L, 2);
  int n;
  lua_settop(L, 0);
  n = cr_codec_decode(L, c->call, CR_CODEC_FUNCTIONS);
  if (c->fut == NULL) {
    cr_loop_callback(L, lp, 1, n - 1, -1);
    return 0;
  }
  lua_pushlightuserdata(L, c->fut);
  lua_pushcclosure(L, submit_body, 1);
  lua_insert(L, 1);
  c->fut = NULL;  /* submit_done releases the reference */
  cr_task_spawn(L, lp, 1, n);
  return 0;
}

static void call_run(lua_State *L, cr_loop *lp, cr_post *p) {
  call_post *c = (call_post *)p;
  int top = lua_gettop(L);
  lua_pushcfunction(L, call_p);
  lua_pushlightuserdata(L, c);
  lua_pushlightuserdata(L, lp);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK && c->fut != NULL)
    cr_future_fail(L, c->fut);
  lua_settop(L, top);
  call_free(c);
}

static void call_drop(cr_post *p) {
  call_post *c = (call_post *)p;
  if (c->fut != NULL) cr_future_set(c->fut, FUT_CANCELLED, NULL);
  call_free(c);
}

static cr_lhandle *checkloop(lua_State *L) {
  return (cr_lhandle *)cr_shared_check(L, 1, &cr_lhandle_type);
}

/* Post fn(...) to the loop at 'base' (fn at base + 1, then its
** arguments, all popped); 'fut' for submit. 0 when the loop has closed. */
static int post_call(lua_State *L, int base, cr_future *fut) {
  cr_lhandle *lh = (cr_lhandle *)cr_shared_check(L, base, &cr_lhandle_type);
  cr_encoding e = { "args", CR_CODEC_FUNCTIONS, NULL };
  int n = lua_gettop(L) - base;
  call_post *c;
  luaL_checktype(L, base + 1, LUA_TFUNCTION);
  lua_pushcfunction(L, cr_encode_p);
  lua_pushlightuserdata(L, &e);
  lua_rotate(L, base + 1, 2);
  lua_call(L, n + 1, 0);  /* raises if they cannot be sent */
  c = (call_post *)calloc(1, sizeof *c);
  if (c == NULL) {
    cr_msg_free(e.out);
    return luaL_error(L, "not enough memory");
  }
  c->post.run = call_run;
  c->post.drop = call_drop;
  c->call = e.out;
  c->fut = fut;
  if (fut != NULL) cr_shared_retain(&fut->lk.base);
  if (cr_loop_post(lh, &c->post) != 0) {
    call_drop(&c->post);
    return 0;
  }
  return 1;
}

/* loop:call_soon_threadsafe(fn, ...) -> true, or false: loop closed. */
static int loop_call_soon_threadsafe(lua_State *L) {
  lua_pushboolean(L, post_call(L, 1, NULL));
  return 1;
}

/* loop:submit(fn, ...) -> future: fn(...) runs as a task of that loop. */
static int loop_submit(lua_State *L) {
  cr_future *f = cr_future_new();
  if (f == NULL) return luaL_error(L, "submit: not enough memory");
  cr_shared_push(L, &f->lk.base);  /* the box owns the first reference */
  lua_insert(L, 1);
  post_call(L, 2, f);  /* a closed loop cancels the future */
  lua_settop(L, 1);
  return 1;
}

static void stop_run(lua_State *L, cr_loop *lp, cr_post *p) {
  (void)L;
  lp->stop_flag = 1;
  free(p);
}

static void stop_drop(cr_post *p) {
  free(p);
}

/* loop:stop(): stop that loop (a thread's loop ends its thread). */
static int loop_stop_remote(lua_State *L) {
  cr_lhandle *lh = checkloop(L);
  cr_post *p = (cr_post *)calloc(1, sizeof *p);
  if (p == NULL) return luaL_error(L, "not enough memory");
  p->run = stop_run;
  p->drop = stop_drop;
  if (cr_loop_post(lh, p) != 0) free(p);
  return 0;
}

static int loop_tostring(lua_State *L) {
  cr_lhandle *lh = checkloop(L);
  lua_pushfstring(L, "corun.loop: %p", (void *)lh);
  return 1;
}

/* corun.loop(): this thread's loop, as a handle other threads can use. */
static int loop_handle(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  cr_shared_retain(&lp->lh->base);
  cr_shared_push(L, &lp->lh->base);
  return 1;
}

/* }================================================================= */

void cr_thread_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"thread", thread_new},
    {"pool", pool_new},
    {"loop", loop_handle},
    {NULL, NULL}
  };
  static const luaL_Reg loopmeta[] = {
    {"__tostring", loop_tostring}, {NULL, NULL}
  };
  static const luaL_Reg loopm[] = {
    {"call_soon_threadsafe", loop_call_soon_threadsafe},
    {"submit", loop_submit}, {"stop", loop_stop_remote}, {NULL, NULL}
  };
  static const luaL_Reg poolmeta[] = {
    {"__tostring", pool_tostring}, {"__gc", pool_gc}, {NULL, NULL}
  };
  static const luaL_Reg poolm[] = {
    {"submit", pool_submit}, {"close", pool_close}, {"_finished", pool_finished},
    {"size", pool_size}, {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  cr_shared_newclass(L, &cr_lhandle_type, loopmeta, loopm, loopidx);
  cr_newclass(L, CR_POOL_MT, poolmeta, poolm, loopidx);
}
