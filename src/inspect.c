/*
** inspect.c
** Seeing inside a live process: every loop of every corun thread is
** listed here (its inbox handle, registered when the loop opens and
** removed when it closes), so that a SIGQUIT to a process run by the
** runner makes each loop write the report of its tasks (what each waits
** on, and its stack) to stderr, from its own thread, and go on (Go's
** convention). The runner's main loop watches SIGQUIT unless the script
** watches "quit" itself (corun.signal) or CORUN_SIGQUIT=0.
**
** Slow steps: with CORUN_SLOW=<seconds> in the environment, a watchdog
** thread looks at every loop's running step (its coroutine and start
** time, kept under the loop handle's mutex while CORUN_SLOW is on) and,
** when one has run longer than that without suspending, sets a count hook
** on its coroutine: the hook, run by the task itself, writes its name and
** traceback to stderr. CORUN_SLOW_LIMIT=<seconds> also makes the hook
** raise an error in a task past that limit. Off (the default), a step
** costs one test of cr_slow_on.
**
** Lock order: 'mu' (the registry) before a loop handle's mutex.
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>

#include "corun.h"

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;             /* guards 'loops' and 'nextid' */
static cr_list loops;             /* cr_lhandle.reg of every open loop */
static unsigned nextid = 1;

int cr_slow_on;                   /* set once, before any loop runs */
static double slow_after, slow_limit;  /* seconds; 0: none */
static uv_thread_t watchdog;

static void watch(void *arg);

static double envsec(const char *name) {
  const char *v = getenv(name);
  double d = v != NULL ? strtod(v, NULL) : 0;
  return d > 0 && d < 1e9 ? d : 0;
}

static void init(void) {
  if (uv_mutex_init(&mu) != 0) abort();
  cr_list_init(&loops);
  slow_after = envsec("CORUN_SLOW");
  slow_limit = envsec("CORUN_SLOW_LIMIT");
  if (slow_limit > 0 && (slow_after == 0 || slow_limit < slow_after))
    slow_after = slow_limit;
  if (slow_after > 0 && uv_thread_create(&watchdog, watch, NULL) == 0)
    cr_slow_on = 1;
}

void cr_inspect_add(cr_lhandle *lh) {
  uv_once(&once, init);
  uv_mutex_lock(&mu);
  lh->id = nextid++;
  cr_list_push(&loops, &lh->reg);
  uv_mutex_unlock(&mu);
}

void cr_inspect_remove(cr_lhandle *lh) {
  uv_once(&once, init);
  uv_mutex_lock(&mu);
  cr_list_remove(&lh->reg);
  uv_mutex_unlock(&mu);
}

typedef struct dumpreq {
  cr_post post;
  unsigned id;                    /* the loop's number, 1: the first */
} dumpreq;

static int pushreport(lua_State *L) {
  cr_task_pushblocked(L, (cr_loop *)lua_touserdata(L, 1));
  return 1;
}

/* In the loop's own thread: write its report to stderr. */
static void dump_run(lua_State *L, cr_loop *lp, cr_post *p) {
  dumpreq *r = (dumpreq *)p;
  const char *s;
  int top = lua_gettop(L);
  lua_pushcfunction(L, pushreport);
  lua_pushlightuserdata(L, lp);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) s = lua_tostring(L, -1);
  else s = "(the report failed)";
  fprintf(stderr, "corun: tasks of loop %u (%s):%s\n", r->id,
          r->id == 1 ? "the main thread" : "a corun thread",
          s != NULL && *s != '\0' ? s : "\n(no task)");
  fflush(stderr);
  lua_settop(L, top);
  free(r);
}

static void dump_drop(cr_post *p) { free(p); }

/* Ask every open loop for its report. */
void cr_inspect_dump_all(void) {
  cr_list *n;
  uv_once(&once, init);
  uv_mutex_lock(&mu);
  for (n = cr_list_head(&loops); n != &loops; n = n->next) {
    cr_lhandle *lh = cr_container_of(n, cr_lhandle, reg);
    dumpreq *r = (dumpreq *)malloc(sizeof *r);
    if (r == NULL) break;
    r->post.run = dump_run;
    r->post.drop = dump_drop;
    r->id = lh->id;
    if (cr_loop_post(lh, &r->post) != 0) free(r);
  }
  uv_mutex_unlock(&mu);
}

static void on_sigquit(uv_signal_t *h, int signum) {
  cr_loop *lp = (cr_loop *)h->data;
  (void)signum;
  if (lp->quit_handlers == 0) cr_inspect_dump_all();
}

/* The runner's main loop watches SIGQUIT while it runs a script. */
void cr_inspect_sigquit(cr_loop *lp, int on) {
  const char *env = getenv("CORUN_SIGQUIT");
  if (on && env != NULL && strcmp(env, "0") == 0) return;
  if (on && !uv_is_active((uv_handle_t *)&lp->sigquit)) {
    lp->sigquit.data = lp;
    uv_signal_start(&lp->sigquit, on_sigquit, SIGQUIT);
    uv_unref((uv_handle_t *)&lp->sigquit);
  }
  else if (!on)
    uv_signal_stop(&lp->sigquit);
}


/* {=================================================================
** Slow steps
** ================================================================== */

static _Thread_local cr_loop *steploop;  /* the loop this thread runs */

/* Run by the runaway task itself at its next instruction. */
static void slow_hook(lua_State *L, lua_Debug *ar) {
  cr_loop *lp = steploop;
  int kill;
  double ran;
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (lp == NULL || lp->current == NULL) return;
  uv_mutex_lock(&lp->lh->mu);
  kill = lp->step_kill;
  lp->step_kill = 0;
  ran = (uv_hrtime() - lp->step_start) / 1e9;
  uv_mutex_unlock(&lp->lh->mu);
  cr_task_pushname(L, lp->current);
  if (kill)
    luaL_error(L, "task '%s' ran for %f s without suspending "
                  "(over CORUN_SLOW_LIMIT)", lua_tostring(L, -1), ran);
  luaL_traceback(L, L, NULL, 0);
  fprintf(stderr, "corun: task '%s' has run for %.3f s without "
                  "suspending\n%s\n", lua_tostring(L, -2), ran,
          lua_tostring(L, -1));
  fflush(stderr);
  lua_pop(L, 2);
}

void cr_inspect_step_begin(cr_loop *lp, cr_task *t) {
  steploop = lp;
  uv_mutex_lock(&lp->lh->mu);
  lp->step_co = t->co;
  lp->step_start = uv_hrtime();
  lp->step_seq++;
  uv_mutex_unlock(&lp->lh->mu);
}

void cr_inspect_step_end(cr_loop *lp, cr_task *t) {
  double d;
  uv_mutex_lock(&lp->lh->mu);
  if (lp->step_armed == lp->step_seq) {
    lua_sethook(t->co, NULL, 0, 0);  /* armed, but it suspended first */
    lp->step_kill = 0;
  }
  lp->step_co = NULL;
  d = (uv_hrtime() - lp->step_start) / 1e9;
  if (d > lp->longest_step) lp->longest_step = d;
  uv_mutex_unlock(&lp->lh->mu);
}

/* Arm the hook of loop lp's step if it has run too long (under lh->mu). */
static void check(cr_loop *lp, uint64_t now) {
  double ran;
  if (lp->step_co == NULL) return;
  ran = (now - lp->step_start) / 1e9;
  if (lp->step_armed != lp->step_seq && ran > slow_after) {
    lp->step_armed = lp->step_seq;
    lp->step_kill = slow_limit > 0 && ran > slow_limit;
    lua_sethook(lp->step_co, slow_hook, LUA_MASKCOUNT, 1);
  }
  else if (slow_limit > 0 && ran > slow_limit && !lp->step_kill &&
           lp->step_armed == lp->step_seq && ran - slow_after > 0) {
    lp->step_kill = 1;       /* reported already: now stop it */
    lua_sethook(lp->step_co, slow_hook, LUA_MASKCOUNT, 1);
  }
}

static void watch(void *arg) {
  unsigned ms = (unsigned)(slow_after * 1000 / 4);
  (void)arg;
  if (ms < 5) ms = 5;
  for (;;) {
    cr_list *n;
    uint64_t now;
    uv_sleep(ms);
    now = uv_hrtime();
    uv_mutex_lock(&mu);
    for (n = cr_list_head(&loops); n != &loops; n = n->next) {
      cr_lhandle *lh = cr_container_of(n, cr_lhandle, reg);
      uv_mutex_lock(&lh->mu);
      if (lh->loop != NULL) check(lh->loop, now);
      uv_mutex_unlock(&lh->mu);
    }
    uv_mutex_unlock(&mu);
  }
}

/* }================================================================= */


static void count_handle(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h) && uv_is_active(h)) (*(int *)arg)++;
}

/* core.stats() -> counters of this thread's loop. */
static int inspect_stats(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  int ready = 0, handles = 0;
  cr_list *n;
  for (n = cr_list_head(&lp->ready); n != &lp->ready; n = n->next) ready++;
  uv_walk(&lp->uv, count_handle, &handles);
  lua_createtable(L, 0, 9);
  lua_pushinteger(L, (lua_Integer)lp->nspawned);
  lua_setfield(L, -2, "spawned");
  lua_pushinteger(L, lp->ntasks);
  lua_setfield(L, -2, "alive");
  lua_pushinteger(L, (lua_Integer)lp->nfailed);
  lua_setfield(L, -2, "failed");
  lua_pushinteger(L, (lua_Integer)lp->nswitches);
  lua_setfield(L, -2, "switches");
  lua_pushinteger(L, ready);
  lua_setfield(L, -2, "ready");
  lua_pushinteger(L, (lua_Integer)lp->timers.n);
  lua_setfield(L, -2, "timers");
  lua_pushinteger(L, handles);
  lua_setfield(L, -2, "handles");
  if (cr_slow_on) {
    lua_pushnumber(L, lp->longest_step);
    lua_setfield(L, -2, "longest_step");
  }
  return 1;
}

void cr_inspect_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"stats", inspect_stats}, {NULL, NULL}
  };
  cr_setfuncs(L, funcs, lua_gettop(L) - 1);  /* [loop, module] */
}
