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

static void init(void) {
  if (uv_mutex_init(&mu) != 0) abort();
  cr_list_init(&loops);
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
