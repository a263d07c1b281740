/*
** wait.c
** Waiters: how every primitive parks tasks and wakes them. A wait list is
** a FIFO cr_list of cr_waiter. A waiter is either a task's own (the task
** parked on that one list, cr_wait_on) or a case of a wait group (a select
** over several objects, a wait on a channel or a future: the task is parked
** on the group and each case is a waiter in its object's list). A queue's
** list holds both kinds, in arrival order: whoever came first is served
** first, task or case.
**
** Waking a waiter makes its task ready with an outcome; for a case it
** completes the group (which case, what outcome) and unlinks its other
** cases. A case whose group has already fired (another of its cases won,
** from this thread or another) is stale: it is unlinked and skipped. Values
** go to a waiter on its task's coroutine stack (cr_task_give); a parked
** putter offers its value (cr_wait_pushoffer). A timeout or a cancellation
** takes the waiter out of its list (cr_wait_giveup). Nothing here
** allocates.
**
** These functions are for loop-local lists (the caller runs in the loop's
** thread). Channels, whose lists other threads touch under the channel's
** mutex, complete their cases with cr_wait_complete (waitgroup.c).
*/

#include <assert.h>
#include <stdatomic.h>

#include "corun.h"

/* Park the running task 't' on 'list' (NULL: on nothing, e.g. a sleep)
** with an optional deadline (timeout < 0: none). Use as
** 'return cr_wait_on(...)'; the continuation 'k' gets the outcome from
** cr_task_outcome. */
int cr_wait_on(lua_State *L, cr_task *t, cr_list *list, double timeout,
               lua_KContext ctx, lua_KFunction k) {
  assert(t->wg == NULL && !cr_list_linked(&t->wnode));
  return cr_task_park(L, t, list, timeout, ctx, k);
}

/* Wake waiter 'w' with 'outcome', unlinking it. A task is made ready; a
** case completes its group (its task is made ready and finds which case
** won with what outcome). Returns 0 when 'w' was a stale case: it is
** unlinked and nobody is woken. */
int cr_wait_wake(cr_waiter *w, int outcome) {
  if (w->group == NULL) {
    cr_task_wake(cr_container_of(w, cr_task, w), outcome);
    return 1;
  }
  assert(((cr_case *)w)->queue);
  if (cr_wait_complete_local((cr_case *)w, outcome)) return 1;
  cr_list_remove(&w->node);
  return 0;
}

/* Wake the first live waiter of 'list'; returns its task, or NULL when
** nobody waits. */
cr_task *cr_wait_wakeone(cr_list *list, int outcome) {
  while (!cr_list_empty(list)) {
    cr_waiter *w = cr_wait_first(list);
    cr_task *t = cr_wait_owner(w);
    if (cr_wait_wake(w, outcome)) return t;
  }
  return NULL;
}

/* Wake every waiter of 'list'. */
void cr_wait_wakeall(cr_list *list, int outcome) {
  while (!cr_list_empty(list)) cr_wait_wake(cr_wait_first(list), outcome);
}

/* cr_wait_give (corun.h) when the first waiter is a case: hand the value
** at 'vidx' to the first live waiter of 'list' and wake it (CR_OK); 0
** when nobody waits. */
int cr_wait_givecase(lua_State *L, cr_list *list, int vidx) {
  while (!cr_list_empty(list)) {
    cr_waiter *w = cr_wait_first(list);
    cr_task *t = cr_wait_owner(w);
    if (w->group == NULL) {
      cr_task_wakewith(L, t, vidx);
      return 1;
    }
    if (!cr_wait_wake(w, CR_OK)) continue;
    cr_task_give(L, t, vidx);  /* woken, not yet resumed: it gets this */
    return 1;
  }
  return 0;
}

/* Push the value parked putter 'w' offers: a task parked with it on top
** of its stack; a select put case {obj, "put", value} (argument index + 1
** of the select's frame). Pushing raises nothing. */
void cr_wait_pushoffer(lua_State *L, cr_waiter *w) {
  lua_State *co = cr_wait_owner(w)->co;
  if (w->group == NULL)
    lua_pushvalue(co, -1);
  else
    lua_rawgeti(co, ((cr_case *)w)->index + 1, 3);
  lua_xmove(co, L, 1);
}

/* Take the value the first live putter of 'list' offers: push it and
** return that waiter, or NULL (nothing pushed) when nobody waits. A case
** is completed (woken) at once: its group cannot be won by another case
** afterwards. A task stays parked, still holding its value, until the
** caller has stored the value (which may raise) and calls
** cr_wait_accepted. */
cr_waiter *cr_wait_takeoffer(lua_State *L, cr_list *list) {
  while (!cr_list_empty(list)) {
    cr_waiter *w = cr_wait_first(list);
    if (w->group != NULL && !cr_wait_wake(w, CR_OK)) continue;
    cr_wait_pushoffer(L, w);
    return w;
  }
  return NULL;
}

/* The value cr_wait_takeoffer pushed is stored: wake its task. */
void cr_wait_accepted(cr_waiter *w) {
  if (w->group == NULL) cr_task_wake(cr_container_of(w, cr_task, w), CR_OK);
}

/* How many waiters 'list' holds (stale cases included). */
int cr_wait_count(cr_list *list) {
  int n = 0;
  cr_list *p;
  for (p = list->next; p != list; p = p->next) n++;
  return n;
}

/* Task 't' stops waiting (its deadline passed, it is cancelled): its
** waiter leaves its list, or its wait group is detached. Returns 0 when
** the group has fired already: that completion is on its way (posted by
** another thread) and the task must take it. */
int cr_wait_giveup(cr_task *t) {
  if (t->wg != NULL) return cr_wait_detach(t);
  cr_list_remove(&t->wnode);
  return 1;
}
