/*
** corun.h
** Internal header of the corun C core: the loop, tasks, wait lists and the
** cross-file functions (cr_<file>_<verb>). Nothing here is exported from the
** shared object but luaopen_corun_core.
**
** Invariants (assert()ed in Debug builds; NDEBUG elsewhere):
** - One cr_loop per lua_State (per OS thread); only its driver resumes
**   tasks (loop.c's cr_loop_run, through cr_task_dispatch), one at a time.
** - A task is in at most one of: the ready queue ('node' linked), a wait
**   list (its waiter 'w' linked). Its timer (timer.slot >= 0) may be armed
**   while it waits. A finished task may sit in the loop's 'failed' anchor
**   table, never in a list.
** - A task parks either on one wait list (its own waiter, w.group NULL) or
**   on a wait group (w.group set, its own waiter unlinked: the group's
**   cases are the waiters); never both (wait.c).
** - Waking a task writes its outcome, unlinks it from its wait list and its
**   timer, and appends it to the ready queue. Values handed to a woken task
**   are pushed on its coroutine's stack and counted in 'nargs': they are the
**   arguments of its next lua_resume, i.e. what its continuation sees.
** - Only task.c writes the fields of a cr_task; other files call its
**   functions (cr_task_give, cr_task_setgroup, ...).
*/

#ifndef corun_h
#define corun_h

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#include "list.h"
#include "heap.h"

#define CR_LOOP_MT     "corun.loop"
#define CR_TASK_MT     "corun.task"
#define CR_HANDLE_MT   "corun.handle"
#define CR_QUEUE_MT    "corun.queue"
#define CR_STREAM_MT   "corun.stream"
#define CR_CANCELLED_MT "corun.Cancelled"
#define CR_TIMEOUT_MT  "corun.Timeout"

/* Tags that identify corun userdata without a metatable lookup (checked
** together with the userdata's size; see cr_toudata). */
#define CR_TASK_MAGIC  0x7a5c0001u
#define CR_QUEUE_MAGIC 0x7a5c0002u

/* Most arguments a callback keeps (they are uservalues: 16-bit count). */
#define CR_MAXARGS 60000

/* Ready-queue entry kinds. */
enum { CR_SCHED_TASK, CR_SCHED_CALLBACK };

/* Outcomes a parked task is woken with. */
enum { CR_OK, CR_TIMEOUT, CR_CANCELLED, CR_CLOSED, CR_BROKEN };

/* Task statuses ("running" is derived: loop->current == task). */
enum { CR_PENDING, CR_DONE, CR_FAILED, CR_CANCELLED_ST };

/* Uservalue slots of a task. The "aux" value is nil, the name (a string),
** one done callback (not a table), or a table {name =, msg = cancel
** message, traceback =, ctx = context (corun.context_var), [i] = done
** callbacks}; it lives in CR_TUV_VALUE
** while the task is alive and in CR_TUV_CO once it has finished. */
enum {
  CR_TUV_CO = 1,      /* the coroutine while alive; then the aux value */
  CR_TUV_VALUE,       /* the aux value while alive; then results or error */
  CR_TUV_N = CR_TUV_VALUE
};

/* Uservalue slots of the loop. */
enum { CR_LUV_TASKS = 1, CR_LUV_HANDLES, CR_LUV_FAILED,
       CR_LUV_N = CR_LUV_FAILED };

typedef struct cr_loop cr_loop;
typedef struct cr_wgroup cr_wgroup;

/* The common head of what the ready queue and the timer heap hold: tasks
** and callback handles. Both structs start with these fields, so either can
** be reached from its node or its timer through a cr_entry. */
#define CR_ENTRY_HEAD \
  cr_list node;               /* in the ready queue */ \
  cr_timer timer;             /* in the timer heap while armed */ \
  unsigned char kind          /* CR_SCHED_* */

typedef struct cr_entry {
  CR_ENTRY_HEAD;
} cr_entry;

/* A waiter (wait.c): one entry of a primitive's wait list. It is either
** the one a task embeds ('group' NULL: the task itself waits there) or
** the one a case of a wait group embeds ('group' its group: the task is
** group->task, parked on the group). Lists of queues hold both kinds. */
typedef struct cr_waiter {
  cr_list node;               /* in a wait list while linked */
  cr_wgroup *group;           /* NULL: a task's own waiter; else a case's */
} cr_waiter;

/* A task: kept small, since a sleeping task costs this plus a coroutine
** (112 bytes: with its two uservalues, just inside a 208-byte chunk). */
typedef struct cr_task {
  CR_ENTRY_HEAD;
  unsigned char status;       /* CR_PENDING, CR_DONE, ... */
  unsigned char outcome;      /* what the last wake-up brought (CR_OK, ...) */
  unsigned char started : 1;  /* the body has been entered */
  unsigned char yielded : 1;  /* the last yield came from a corun park */
  unsigned char cancel_pending : 1;  /* Cancelled still to be delivered */
  unsigned char retrieved : 1;  /* its error was re-raised or reported */
  unsigned char shielded : 1;  /* parked where cancellation must wait */
  unsigned char ushield : 1;  /* inside corun.shield: task cancels wait */
  unsigned char scope_cancel : 1;  /* a scope inside the shield expired */
  unsigned char has_ctx : 1;  /* its aux table holds a context (ctx) */
  int ncancel;                /* cancel requests not yet withdrawn */
  union {                     /* its waiter, under two names */
    cr_waiter w;
    struct {
      cr_list wnode;          /* in a primitive's wait list while parked */
      cr_wgroup *wg;          /* parked on a wait group (select, channel,
                              ** future): then wnode is unlinked */
    };
  };
  cr_list joiners;            /* tasks parked in join on this one */
  lua_State *co;              /* the coroutine, owned via uservalue CR_TUV_CO */
  cr_loop *loop;
  int ref;                    /* anchor in the loop's task table, or LUA_NOREF */
  union {
    int nargs;                /* alive: values pushed on co for the next resume */
    int nres;                 /* finished: number of results */
  };
  unsigned id;
  unsigned magic;             /* CR_TASK_MAGIC: a fast type check */
} cr_task;

typedef struct cr_handle {
  CR_ENTRY_HEAD;
  int ref;                    /* anchor while scheduled, or LUA_NOREF */
  int nargs;                  /* uservalue 1 is fn, 2..nargs+1 the args */
  cr_loop *loop;
} cr_handle;

typedef struct cr_refs {   /* keys of an anchor table */
  int *free;                /* owned: keys free for reuse */
  int nfree, n, cap;        /* free keys, keys ever used, free's size */
} cr_refs;

struct cr_loop {
  uv_loop_t uv;
  uv_timer_t timer;           /* armed to the earliest deadline when blocking */
  uv_signal_t sigint;         /* the runner's SIGINT watcher */
  cr_list ready;              /* FIFO of cr_entry: tasks and callbacks */
  cr_list gathers;            /* parked gathers that fail fast (gather.c) */
  cr_heap timers;             /* owned: min-heap of armed timers */
  cr_refs refs[CR_LUV_N + 1]; /* anchor keys, by CR_LUV_* slot */
  cr_task *current;           /* the task being resumed, or NULL */
  cr_task *main;              /* the main task of the current run */
  unsigned seq;               /* timer arm counter */
  double vnow;                /* virtual clock time */
  unsigned next_id;
  int ntasks;                 /* live tasks */
  int failures;               /* unretrieved errors reported so far */
  int sigints;                /* SIGINTs received during this run */
  int int_handlers;           /* the script's own "int" watchers (signal.c) */
  int quit_handlers;          /* the script's own "quit" watchers */
  uv_signal_t sigquit;        /* the runner's SIGQUIT watcher (inspect.c) */
  int remote;                 /* completions other threads will post */
  uv_async_t async;           /* other threads' wake-up call */
  struct cr_lhandle *lh;      /* owned reference: this loop's inbox */
  lua_State *L;               /* the thread the driver runs on */
  unsigned char virtual_clock;
  unsigned char running;      /* inside cr_loop_run */
  unsigned char stop_flag;
  unsigned char closed;
  unsigned char sigint_on;
  unsigned char script;       /* the runner's run: corun.run joins instead */
  unsigned char draining;     /* teardown: cr_loop_run(NULL) ends with the
                              ** last task, whatever handles stay open */
  /* corun.stats() counters, and the step being watched (inspect.c) */
  unsigned long long nspawned, nfailed, nswitches;
  double longest_step;        /* seconds; measured while CORUN_SLOW is on */
  lua_State *step_co;         /* the coroutine running now (under lh->mu) */
  unsigned long long step_start;  /* uv_hrtime() when it started */
  unsigned step_seq, step_armed;  /* the step; the one whose hook is set */
  unsigned char step_kill;    /* the hook raises: the hard limit passed */
  int aref[CR_LUV_N + 1];     /* integer registry keys of the anchor tables */
  int task_mt;                /* integer registry key of the task metatable */
};

/* Shareable handles: C objects with an atomic reference count, seen from
** each Lua state through a box (a userdata holding a pointer). Channels,
** loops and futures are shareable: the codec copies them between states
** as another box on the same object. */
typedef struct cr_shared cr_shared;
typedef struct cr_shared_type {
  const char *mtname;               /* metatable of its boxes */
  void (*destroy)(cr_shared *s);    /* last reference gone */
} cr_shared_type;
struct cr_shared {
  _Atomic int refs;
  const cr_shared_type *type;
};

/* shared.c */
void cr_shared_init(cr_shared *s, const cr_shared_type *type);
void cr_shared_retain(cr_shared *s);
void cr_shared_release(cr_shared *s);
cr_shared *cr_shared_test(lua_State *L, int idx);
cr_shared *cr_shared_check(lua_State *L, int idx, const cr_shared_type *t);
void cr_shared_push(lua_State *L, cr_shared *s);
void cr_shared_newclass(lua_State *L, const cr_shared_type *type,
                        const luaL_Reg *meta, const luaL_Reg *methods,
                        int loopidx);

/* codec.c: values copied between Lua states as a flat message. */
typedef struct cr_msg cr_msg;
#define CR_CODEC_FUNCTIONS 1        /* allow functions (bytecode) */
#define CR_CODEC_LOCAL 2            /* refuse handles (another process) */
cr_msg *cr_codec_encode(lua_State *L, int first, int n, const char *what,
                        int flags);
int cr_codec_decode(lua_State *L, const cr_msg *m, int flags);
void cr_msg_free(cr_msg *m);
size_t cr_msg_size(const cr_msg *m);
/* A message kept in place when it is at most CR_SLOT_BYTES bytes (most
** numbers, booleans, short strings, small tables), else a malloc'd one:
** what a channel's ring and a wait case hold. Empty: big NULL, len 0. A
** slot may be copied (moved) with memcpy; each copy must be freed or
** decoded at most once. */
#define CR_SLOT_BYTES 52
typedef struct cr_msgslot {
  cr_msg *big;                /* owned: a message too big for data, or NULL */
  uint32_t len;               /* bytes used in data (0 with big) */
  char data[CR_SLOT_BYTES];
} cr_msgslot;
void cr_codec_encode_slot(lua_State *L, int first, int n, const char *what,
                          int flags, cr_msgslot *s);
int cr_codec_decode_slot(lua_State *L, const cr_msgslot *s, int flags);
void cr_codec_free_slot(cr_msgslot *s);
int cr_codec_decode_buffer(lua_State *L, const char *data, size_t len,
                           int flags);
void cr_codec_open_lib(lua_State *L);

/* Work posted to a loop by other threads: run in the loop's own thread
** (from its driver), or dropped if the loop has closed. */
typedef struct cr_post {
  cr_list node;
  void (*run)(lua_State *L, cr_loop *lp, struct cr_post *p);
  void (*drop)(struct cr_post *p);
} cr_post;

/* A shareable handle on a loop: its inbox, valid after the loop closes. */
typedef struct cr_lhandle {
  cr_shared base;
  uv_mutex_t mu;              /* guards inbox and loop */
  cr_list inbox;              /* cr_post */
  cr_loop *loop;              /* NULL once the loop has closed */
  cr_list reg;                /* in inspect.c's list of open loops */
  unsigned id;                /* the loop's number there (1: the first) */
} cr_lhandle;

/* Objects other threads wait on start like this (channels, futures). */
typedef struct cr_lockable {
  cr_shared base;
  uv_mutex_t mu;
} cr_lockable;

/* One case of a wait group: a waiter linked in its object's waiter list
** (a channel's under its mutex; a queue's in the owner's thread). For a
** select, the case table is argument index + 1 of the owner's frame (a
** put case's value is its field 3: see cr_wait_pushoffer). */
typedef struct cr_case {
  union {
    cr_waiter w;
    struct {
      cr_list node;           /* in the object's list */
      cr_wgroup *group;       /* never NULL */
    };
  };
  cr_lockable *obj;           /* a channel or future, retained while
                              ** linked; NULL for a queue case */
  cr_msgslot offer;           /* a send: the message offered */
  int index;                  /* position in the group */
  int send;                   /* a send case (else receive or wait) */
  int queue;                  /* a case on a (loop-local) queue */
} cr_case;

/* A wait on one or more cross-thread objects by a task or a plain thread.
** The first completion wins 'fired'; the others find it taken and skip. */
struct cr_wgroup {
  cr_post post;               /* posted to the owner task's loop */
  _Atomic int fired;
  int which;                  /* the case that completed */
  int outcome;                /* CR_OK, CR_CLOSED, ... */
  cr_msgslot msg;             /* what a receive case got */
  cr_task *task;              /* the owner, or NULL: a plain thread */
  cr_lhandle *lh;             /* the owner's loop (retained) */
  uv_mutex_t mu;              /* a plain thread's: signalled under mu */
  uv_cond_t cond;
  int signalled;
  int remote;                 /* has cases other threads complete */
  int ncases;
  cr_case *cases;
};

/* waitgroup.c: wait groups. A group of a plain thread (task NULL) has its
** mutex and condition made by cr_wait_new and waits in cr_wait_block; a
** task's parks with cr_wait_park and is found in its continuation as
** task->wg. */
cr_wgroup *cr_wait_new(cr_task *task, int n);
void cr_wait_free(cr_wgroup *g);
void cr_wait_link(cr_case *c, cr_lockable *obj, cr_list *q);
int cr_wait_mode(lua_State *L, cr_loop *lp, const char *fname, cr_task **t);
int cr_wait_wouldblock(lua_State *L, const char *fname);
cr_task *cr_wait_caller(lua_State *L, cr_loop *lp, const char *fname);
int cr_wait_park(lua_State *L, cr_task *t, cr_wgroup *g, double timeout,
                 lua_KContext ctx, lua_KFunction k);
int cr_wait_block(cr_wgroup *g, double timeout);
int cr_wait_complete(cr_case *c, int outcome, cr_msgslot *msg);
int cr_wait_complete_local(cr_case *c, int outcome);
int cr_wait_detach(cr_task *t);
void cr_wait_abandon(cr_task *t);

/* channel.c */
void cr_channel_open_lib(lua_State *L);

/* stream.c */
struct cr_stream;
struct cr_stream *cr_stream_push(lua_State *L, cr_loop *lp, uv_stream_t *h);
void cr_stream_open_lib(lua_State *L);

/* process.c */
void cr_process_open_lib(lua_State *L);

/* redis.c */
void cr_redis_open_lib(lua_State *L);

/* thread.c */
void cr_thread_open_lib(lua_State *L);

/* future.c: the future of a thread, a pool job, loop:submit or a
** process-pool job. */
enum { FUT_PENDING, FUT_RUNNING, FUT_DONE, FUT_FAILED, FUT_CANCELLED };

typedef struct cr_future {
  cr_lockable lk;             /* its shared head and mutex */
  int state;                  /* FUT_* */
  cr_msg *value;              /* owned: results, or the error, once done */
  cr_list waiters;            /* cr_case */
  uv_cond_t cond;             /* plain threads waiting for it */
  char *error;                /* owned: the error text, once failed */
  _Atomic int retrieved;      /* its error was raised to someone */
} cr_future;
extern const cr_shared_type cr_future_type;
cr_future *cr_future_new(void);
void cr_future_set(cr_future *f, int state, cr_msg *m);
void cr_future_resolve(lua_State *L, cr_future *f, int n);
void cr_future_fail(lua_State *L, cr_future *f);
void cr_future_push(lua_State *L, cr_future *f);
/* Encoding in a protected call: cr_encode_p(L) with the cr_encoding at 1
** and the values after it; cr_encode_safe pops the n values on top and
** returns NULL (the message on top) when they cannot be sent. */
typedef struct cr_encoding {
  const char *what;
  int flags;
  cr_msg *out;
} cr_encoding;
int cr_encode_p(lua_State *L);
cr_msg *cr_encode_safe(lua_State *L, int n, const char *what, int flags);
void cr_future_open_lib(lua_State *L);
void cr_thread_tostring(lua_State *L);
int cr_thread_unretrieved(void);
void cr_thread_count_unretrieved(void);

/* loop.c */
int cr_loop_post(cr_lhandle *lh, cr_post *p);
void cr_loop_remote(cr_loop *lp, int delta);
extern const cr_shared_type cr_lhandle_type;
cr_loop *cr_loop_get(lua_State *L);   /* the loop of upvalue 1 */
cr_loop *cr_loop_open(lua_State *L);  /* pushes this state's loop */
double cr_loop_now(cr_loop *lp);
void cr_loop_ready(cr_loop *lp, cr_entry *e);
int cr_loop_arm(cr_loop *lp, cr_timer *t, double delay);
void cr_loop_disarm(cr_loop *lp, cr_timer *t);
int cr_loop_run(lua_State *L, cr_loop *lp, int loopidx, cr_task *until);
void cr_loop_sigint(cr_loop *lp, int on);
int cr_loop_anchor(lua_State *L, cr_loop *lp, int slot, int idx);
void cr_loop_unanchor(lua_State *L, cr_loop *lp, int slot, int ref);
void cr_loop_pushanchored(lua_State *L, cr_loop *lp, int slot, int ref);
void cr_loop_pushanchors(lua_State *L, int slot);
int cr_loop_callback(lua_State *L, cr_loop *lp, int fidx, int nargs,
                     double delay);
void cr_loop_open_lib(lua_State *L);
/* loop.c: callback handles (corun.call_soon, call_later) */
void cr_handle_dispatch(lua_State *L, cr_loop *lp, cr_handle *h);
void cr_handle_timer(cr_loop *lp, cr_handle *h);
void cr_handle_drop_all(lua_State *L, cr_loop *lp);

/* task.c */
cr_task *cr_task_enter(lua_State *L, cr_loop *lp, const char *fname);
int cr_task_park(lua_State *L, cr_task *t, cr_list *waitlist, double timeout,
                 lua_KContext ctx, lua_KFunction k);
void cr_task_wake(cr_task *t, int outcome);
int cr_task_cancelnow(cr_task *t);
void cr_task_pushname(lua_State *L, cr_task *t);
void cr_task_checkcancel(lua_State *L, cr_task *t);
int cr_task_outcome(lua_State *L, cr_task *t);
void cr_task_dispatch(lua_State *L, cr_loop *lp, cr_task *t);
void cr_task_timer(cr_loop *lp, cr_task *t);
cr_task *cr_task_spawn(lua_State *L, cr_loop *lp, int fidx, int nargs);
int cr_task_cancel(lua_State *L, cr_task *t, int msgidx);
void cr_task_report(lua_State *L, cr_loop *lp);
int cr_task_pushfirstfailure(lua_State *L, cr_loop *lp);
void cr_task_pushblocked(lua_State *L, cr_loop *lp);
void cr_task_finish_all(lua_State *L, cr_loop *lp);
void cr_task_retrieved(lua_State *L, cr_task *t);
void cr_task_setname(lua_State *L, int tidx);
void cr_task_notify(lua_State *L, int tidx, int qidx);
int cr_task_pushresults(lua_State *L, cr_task *t, int idx);
int cr_pushcancelled(lua_State *L, int msgidx);
void cr_task_open_lib(lua_State *L);
/* task.c: what other files may change in a task */
void cr_task_give(lua_State *L, cr_task *t, int vidx);
void cr_task_wakewith(lua_State *L, cr_task *t, int vidx);
void cr_task_gave(cr_task *t, int n);
void cr_task_setshielded(cr_task *t, int on);
void cr_task_setgroup(cr_task *t, cr_wgroup *g);
int cr_task_takeoutcome(cr_task *t);
int cr_task_raisecancel(lua_State *L, cr_task *t);

/* wait.c: wait lists of waiters (tasks and cases), in the loop's thread */
static inline cr_task *cr_wait_owner(cr_waiter *w) {
  return w->group == NULL ? cr_container_of(w, cr_task, w) : w->group->task;
}
static inline cr_waiter *cr_wait_first(cr_list *list) {
  return cr_container_of(cr_list_head(list), cr_waiter, node);
}
int cr_wait_on(lua_State *L, cr_task *t, cr_list *list, double timeout,
               lua_KContext ctx, lua_KFunction k);
int cr_wait_wake(cr_waiter *w, int outcome);
cr_task *cr_wait_wakeone(cr_list *list, int outcome);
void cr_wait_wakeall(cr_list *list, int outcome);
int cr_wait_givecase(lua_State *L, cr_list *list, int vidx);
/* Hand the value at 'vidx' to the first live waiter of 'list' and wake it
** (CR_OK): the value is what its park returns. 0 when nobody waits.
** Inline: a plain task first is the hot path of every queue hand-over. */
static inline int cr_wait_give(lua_State *L, cr_list *list, int vidx) {
  cr_waiter *w;
  if (cr_list_empty(list)) return 0;
  w = cr_wait_first(list);
  if (w->group != NULL) return cr_wait_givecase(L, list, vidx);
  cr_task_wakewith(L, cr_container_of(w, cr_task, w), vidx);
  return 1;
}
cr_waiter *cr_wait_takeoffer(lua_State *L, cr_list *list);
void cr_wait_accepted(cr_waiter *w);
void cr_wait_pushoffer(lua_State *L, cr_waiter *w);
int cr_wait_count(cr_list *list);
int cr_wait_giveup(cr_task *t);

/* inspect.c */
void cr_inspect_add(cr_lhandle *lh);
void cr_inspect_remove(cr_lhandle *lh);
void cr_inspect_dump_all(void);
void cr_inspect_sigquit(cr_loop *lp, int on);
extern int cr_slow_on;            /* CORUN_SLOW set: steps are watched */
void cr_inspect_step_begin(cr_loop *lp, cr_task *t);
void cr_inspect_step_end(cr_loop *lp, cr_task *t);
void cr_inspect_open_lib(lua_State *L);

/* gather.c */
void cr_gather_failed(cr_loop *lp, cr_task *t);
void cr_gather_open_lib(lua_State *L);

/* queue.c */
int cr_queue_offer(lua_State *L, int qidx, int vidx);
int cr_queue_test(lua_State *L, int idx);
int cr_queue_select_try(lua_State *L, int qidx, int put, int vidx);
void cr_queue_select_link(lua_State *L, int qidx, int put, cr_case *c);
int cr_queue_is_priority(lua_State *L, int idx);
void cr_queue_open_lib(lua_State *L);

/* sync.c */
void cr_sync_open_lib(lua_State *L);

/* fs.c */
void cr_fs_open_lib(lua_State *L);

/* signal.c */
void cr_signal_open_lib(lua_State *L);

/* aux.c */
int cr_pusherror(lua_State *L, int e);
int cr_argerror(lua_State *L, int arg, const char *fname, const char *msg);
int cr_signum(lua_State *L, int arg, const char *def);
const char *cr_signame(int sig);
extern const char cr_task_mtkey, cr_queue_mtkey;  /* registry keys */
double cr_opttimeout_arg(lua_State *L, int arg);
/* The optional timeout at 'arg': seconds >= 0, or -1 for none (inline:
** most calls have none). */
static inline double cr_opttimeout(lua_State *L, int arg) {
  return lua_gettop(L) < arg ? -1 : cr_opttimeout_arg(L, arg);
}
int cr_pushfail(lua_State *L, const char *why);
int cr_iscallable(lua_State *L, int idx);
const char *cr_describe(lua_State *L, int idx);
const char *cr_fname(lua_State *L);
int cr_nomem(lua_State *L);
int cr_badarg(lua_State *L, int arg, const char *fname, const char *msg);
void cr_checkcallable(lua_State *L, int arg);
/* The full userdata at 'idx' if it has 'size' bytes and 'magic' at offset
** 'moff' (one of corun's own objects), else NULL. Cheaper than
** luaL_testudata, which looks the metatable up by name; inline, since
** every method call of a queue, lock, ... starts with it. lua_rawlen is 0
** for a light userdata, and lua_touserdata NULL for a string or table of
** that length: two calls instead of three. */
static inline void *cr_toudata(lua_State *L, int idx, size_t size,
                               size_t moff, unsigned magic) {
  void *p;
  if (lua_rawlen(L, idx) != size || (p = lua_touserdata(L, idx)) == NULL)
    return NULL;
  if (*(unsigned *)((char *)p + moff) != magic) return NULL;
  return p;
}
#define cr_testobj(L, idx, type, magicv) \
  ((type *)cr_toudata(L, idx, sizeof(type), offsetof(type, magic), magicv))
void cr_setmetatable(lua_State *L, const char *key);
void cr_setfuncs(lua_State *L, const luaL_Reg *l, int loopidx);
void cr_newclass(lua_State *L, const char *name, const luaL_Reg *meta,
                 const luaL_Reg *methods, int loopidx);

/* {=================================================================
** dns.c, udp.c, sockopt.c: DNS, UDP and socket options (corun.socket)
** ================================================================== */

/* dns.c */
int cr_dns_pusherror(lua_State *L, int e);  /* nil, "ENAME: msg", "ENAME" */
int cr_dns_getaddrinfo(lua_State *L, cr_loop *lp, const char *fname,
                       const char *host, const char *service, int family,
                       int socktype, int flags, double timeout,
                       lua_KFunction k);
struct addrinfo *cr_dns_result(lua_State *L, lua_KContext ctx, int *err);
void cr_dns_pushaddr(lua_State *L, const struct sockaddr *sa, int *port);
int cr_dns_numeric(const char *host, int port, struct sockaddr_storage *ss);
const char *cr_dns_checkstring(lua_State *L, int arg, const char *fname);
void cr_dns_open_lib(lua_State *L);

/* udp.c */
void cr_udp_open_lib(lua_State *L);

/* stream.c, for sockopt.c */
uv_stream_t *cr_stream_handle(lua_State *L, int idx);
size_t cr_stream_buffered(lua_State *L, int idx);
void cr_stream_take(lua_State *L, int idx, size_t max);
/* stream.c, for http_server.c */
const char *cr_stream_peek(lua_State *L, int idx, size_t *len);
void cr_stream_skip(lua_State *L, int idx, size_t n);

/* sockopt.c */
void cr_sockopt_open_lib(lua_State *L);

/* {=================================================================
** HTTP and TLS
** ================================================================== */

/* tls.c (built with CORUN_TLS) */
void cr_tls_open_lib(lua_State *L);

/* http_client.c, http_server.c (built with CORUN_HTTP) */
void cr_http_client_open_lib(lua_State *L);
void cr_http_server_open_lib(lua_State *L);

/* }================================================================= */

#endif
