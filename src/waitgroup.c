/*
** waitgroup.c
** Wait groups: waits on objects other threads complete (channel sends and
** receives, futures), by a task or by a plain thread.
**
** A wait group is malloc'd when a task or a plain thread must wait; it has
** one case per object (a channel send or receive, a future), linked in the
** object's waiter list under the object's mutex. The first completion wins
** the group's 'fired' flag (an atomic compare-and-swap); peers that lose it
** skip that case, and the owner unlinks every case when it wakes. A task
** owner is woken through its loop's inbox (the group's post); a plain
** thread through the group's condition variable. An owner that times out
** or is cancelled must win 'fired' too; if it loses, a completion is on its
** way and the task takes it (a cancelled task keeps a received message and
** gets Cancelled at its next suspension): nothing is lost.
**
** A select may also hold cases on loop-local queues (case.queue): those
** are completed in the owner's own thread (cr_wait_complete_local).
**
** Lock order: an object's mutex, then a loop handle's or a group's mutex.
** No two object mutexes are ever held at once (but in select, which locks
** its channels together in address order).
*/

#include <stdatomic.h>
#include <stdlib.h>

#include "corun.h"

/* {=================================================================
** Wait groups
** ================================================================== */

/* Free a group whose cases are unlinked, with the offers nobody took. */
void cr_wait_free(cr_wgroup *g) {
  int i;
  for (i = 0; i < g->ncases; i++)
    if (!(g->which == i && g->outcome == CR_OK))
      cr_codec_free_slot(&g->cases[i].offer);
  cr_codec_free_slot(&g->msg);
  if (g->lh != NULL) cr_shared_release(&g->lh->base);
  free(g);
}

/* Unlink every case still linked (the owner does this once woken). */
static void unlink_cases(cr_wgroup *g) {
  int i;
  for (i = 0; i < g->ncases; i++) {
    cr_case *c = &g->cases[i];
    if (c->queue) {  /* loop-local: the owner's thread, no lock */
      cr_list_remove(&c->node);
      continue;
    }
    if (c->obj == NULL) continue;
    uv_mutex_lock(&c->obj->mu);
    cr_list_remove(&c->node);
    uv_mutex_unlock(&c->obj->mu);
    cr_shared_release(&c->obj->base);
    c->obj = NULL;
  }
}

/* In the owner's loop: a peer completed the group. */
static void post_run(lua_State *L, cr_loop *lp, cr_post *p) {
  cr_wgroup *g = cr_container_of(p, cr_wgroup, post);
  (void)L;
  unlink_cases(g);
  if (g->remote) cr_loop_remote(lp, -1);
  if (g->task == NULL) {  /* its task was closed meanwhile */
    cr_wait_free(g);
    return;
  }
  cr_task_wake(g->task, CR_OK);
}

static void post_drop(cr_post *p) {
  cr_wgroup *g = cr_container_of(p, cr_wgroup, post);
  unlink_cases(g);
  cr_wait_free(g);
}

/* A new group with 'n' cases for the running task (or, task NULL, for a
** plain thread, which then waits in cr_wait_block). Returns NULL when out
** of memory. */
cr_wgroup *cr_wait_new(cr_task *task, int n) {
  cr_wgroup *g = (cr_wgroup *)calloc(1, sizeof *g + n * sizeof(cr_case));
  int i;
  if (g == NULL) return NULL;
  if (task == NULL) {
    if (uv_mutex_init(&g->mu) != 0) {
      free(g);
      return NULL;
    }
    if (uv_cond_init(&g->cond) != 0) {
      uv_mutex_destroy(&g->mu);
      free(g);
      return NULL;
    }
  }
  atomic_init(&g->fired, 0);
  g->cases = (cr_case *)(g + 1);
  g->ncases = n;
  g->which = -1;
  g->task = task;
  g->post.run = post_run;
  g->post.drop = post_drop;
  for (i = 0; i < n; i++) {
    cr_list_init(&g->cases[i].node);
    g->cases[i].group = g;
    g->cases[i].index = i;
  }
  if (task != NULL) {
    g->lh = task->loop->lh;
    cr_shared_retain(&g->lh->base);
  }
  return g;
}

/* Link case 'c' in list 'q' of object 'obj' (caller holds obj->mu). */
void cr_wait_link(cr_case *c, cr_lockable *obj, cr_list *q) {
  cr_shared_retain(&obj->base);
  c->obj = obj;
  cr_list_push(q, &c->node);
}

/* Complete case 'c' (caller holds its object's mutex), handing it message
** 'msg' if not NULL (moved into the group). Returns 0 when its group had
** already fired: the case is stale, 'msg' stays the caller's, and the
** caller skips the case. */
int cr_wait_complete(cr_case *c, int outcome, cr_msgslot *msg) {
  cr_wgroup *g = c->group;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&g->fired, &expected, 1)) return 0;
  cr_list_remove(&c->node);
  g->which = c->index;
  g->outcome = outcome;
  if (msg != NULL) g->msg = *msg;
  if (g->task != NULL) {
    if (cr_loop_post(g->lh, &g->post) != 0)
      cr_codec_free_slot(&g->msg);  /* the loop is gone: so is its task */
  }
  else {  /* after the signal the owner may free g: touch nothing */
    uv_mutex_lock(&g->mu);
    g->signalled = 1;
    uv_cond_signal(&g->cond);
    uv_mutex_unlock(&g->mu);
  }
  return 1;
}

/* The owner gives up (timeout, cancel): 1 when it won the group, which is
** then unlinked; 0 when a completion is already on its way. */
static int detach(cr_wgroup *g, cr_loop *lp) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&g->fired, &expected, 1)) return 0;
  unlink_cases(g);
  if (lp != NULL && g->remote) cr_loop_remote(lp, -1);
  return 1;
}

/* Complete case 'c' of a queue: the queue and the owner task are in this
** thread, so the owner is woken directly. 0 when the group had fired. */
int cr_wait_complete_local(cr_case *c, int outcome) {
  cr_wgroup *g = c->group;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&g->fired, &expected, 1)) return 0;
  g->which = c->index;
  g->outcome = outcome;
  unlink_cases(g);
  if (g->remote) cr_loop_remote(g->task->loop, -1);
  cr_task_wake(g->task, CR_OK);
  return 1;
}

int cr_wait_detach(cr_task *t) {
  return detach(t->wg, t->loop);
}

/* A task is closed for good while it waits on its group. */
void cr_wait_abandon(cr_task *t) {
  cr_wgroup *g = t->wg;
  cr_task_setgroup(t, NULL);
  if (detach(g, t->loop))
    cr_wait_free(g);
  else
    g->task = NULL;  /* the posted completion frees it */
}

/* }================================================================= */


/* {=================================================================
** Waiting: a task parks; a plain thread (no loop running) blocks.
** ================================================================== */

/* How the caller would wait: 1 a task (returned in *t, checked), 0 a
** plain thread (blocks), -1 a plain callback of a running loop, which must
** not block (it may still do what needs no waiting). */
int cr_wait_mode(lua_State *L, cr_loop *lp, const char *fname, cr_task **t) {
  *t = NULL;
  if (lp->current != NULL && lp->current->co == L) {
    *t = cr_task_enter(L, lp, fname);
    cr_task_checkcancel(L, *t);
    return 1;
  }
  return lp->running ? -1 : 0;
}

int cr_wait_wouldblock(lua_State *L, const char *fname) {
  return luaL_error(L, "%s: would block the loop (call it from a task)",
                    fname);
}

/* The running task if the caller is one; NULL for a plain thread. Raises
** when called from a plain callback of a running loop. */
cr_task *cr_wait_caller(lua_State *L, cr_loop *lp, const char *fname) {
  cr_task *t;
  if (cr_wait_mode(L, lp, fname, &t) < 0) cr_wait_wouldblock(L, fname);
  return t;
}

/* Block this OS thread until 'g' fires or 'timeout' passes (< 0: never).
** Returns the outcome, CR_TIMEOUT when this thread won the group. The
** group (from cr_wait_new with no task) has its cases linked; its mutex
** and condition are destroyed here. */
int cr_wait_block(cr_wgroup *g, double timeout) {
  uint64_t deadline = timeout < 0 ? 0 : uv_hrtime() + (uint64_t)(timeout * 1e9);
  int outcome = CR_OK;
  uv_mutex_lock(&g->mu);
  while (!g->signalled) {
    if (timeout < 0)
      uv_cond_wait(&g->cond, &g->mu);
    else {
      uint64_t now = uv_hrtime();
      if (now >= deadline ||
          uv_cond_timedwait(&g->cond, &g->mu, deadline - now) == UV_ETIMEDOUT) {
        int expected = 0;  /* win the group; unlink once unlocked */
        if (atomic_compare_exchange_strong(&g->fired, &expected, 1)) {
          outcome = CR_TIMEOUT;
          break;
        }
      }
    }
  }
  uv_mutex_unlock(&g->mu);
  unlink_cases(g);
  uv_cond_destroy(&g->cond);
  uv_mutex_destroy(&g->mu);
  return outcome == CR_TIMEOUT ? CR_TIMEOUT : g->outcome;
}

/* A task parks on its group 'g' (its cases are linked). */
int cr_wait_park(lua_State *L, cr_task *t, cr_wgroup *g, double timeout,
                 lua_KContext ctx, lua_KFunction k) {
  int i;
  for (i = 0; i < g->ncases; i++)
    if (!g->cases[i].queue) g->remote = 1;
  cr_task_setgroup(t, g);
  if (g->remote) cr_loop_remote(t->loop, 1);
  return cr_task_park(L, t, NULL, timeout, ctx, k);
}

/* }================================================================= */
