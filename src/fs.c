/*
** fs.c
** corun.fs: read, write, append, stat, list, remove, rename, mkdir on
** libuv's thread pool. Each call is a malloc'd operation (fsop) driven
** through one or more uv_fs_* requests by its callbacks: a read is open,
** read until EOF, close. The calling task parks until the operation ends.
** Outside a task the same steps run synchronously (uv_fs_* without a
** callback), so plain scripts can use corun.fs too.
**
** Ownership: the operation belongs to its callbacks while a request is in
** flight. When it ends, it wakes the task parked in its wait list, whose
** continuation reads the results and frees it. A task cancelled meanwhile
** is unlinked at once (it gets Cancelled): the operation then finds its
** wait list empty, stops early where it can (a read closes its file; a
** write still completes) and frees itself. I/O failures are returned as
** nil, "ENOENT: no such file or directory"; misuse raises.
*/

#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "corun.h"

#define READ_CHUNK (64 * 1024)
#define MAX_IO     (1u << 30)    /* most bytes one uv_fs_read/write moves */

enum { FS_READ, FS_WRITE, FS_APPEND, FS_STAT, FS_LIST, FS_REMOVE,
       FS_RENAME, FS_MKDIR };

/* Steps: what the last request was (its result is in req.result). */
enum { P_START, P_OPEN, P_IO, P_CLOSE, P_END };

/* What a step tells the driver. */
enum { S_DONE, S_PENDING, S_AGAIN };

typedef struct fsop {
  uv_fs_t req;                /* reused for each step; cleaned up between */
  cr_loop *loop;
  cr_list waiters;            /* the calling task while it waits */
  int kind;                   /* FS_* */
  int phase;                  /* P_*: the step whose result req holds */
  int sync;                   /* no callbacks: run to the end at once */
  int parked;                 /* the caller has parked: callbacks own it */
  int done;
  int err;                    /* the first error (libuv code), or 0 */
  int mode;                   /* mkdir */
  uv_file fd;                 /* the open file, or -1 */
  char *buf;                  /* owned: data read, or a copy of the data */
  size_t len, cap, off;       /* buf's data, size; bytes written */
  uv_stat_t st;               /* stat */
  char *path, *to;            /* in the same allocation as the fsop */
} fsop;

static void on_fs(uv_fs_t *req);

#define CB(op) ((op)->sync ? NULL : on_fs)
#define LOOP(op) (&(op)->loop->uv)

static void opfree(fsop *op) {
  uv_fs_req_cleanup(&op->req);
  free(op->buf);
  free(op);
}

/* The task parked on 'op', or NULL once it was cancelled. */
static cr_task *waiter(fsop *op) {
  if (cr_list_empty(&op->waiters)) return NULL;
  return cr_wait_owner(cr_wait_first(&op->waiters));
}

/* Nobody waits for the result any more. */
static int abandoned(fsop *op) {
  return op->parked && waiter(op) == NULL;
}

/* {=================================================================
** Steps: each looks at the result of the previous request and issues the
** next one, or reports the operation done.
** ================================================================== */

/* A request was issued and returned 'r': S_PENDING when its callback will
** bring the result, else S_AGAIN with the result in req.result (a
** synchronous call, or a request libuv refused to start). */
static int issued(fsop *op, int r) {
  if (!op->sync && r == 0) return S_PENDING;
  op->req.result = r;
  return S_AGAIN;
}

static int fail(fsop *op, ssize_t res) {
  if (op->err == 0) op->err = (int)res;
  return S_DONE;
}

static int closefd(fsop *op) {
  uv_file fd = op->fd;
  op->fd = -1;
  op->phase = P_CLOSE;
  return issued(op, uv_fs_close(LOOP(op), &op->req, fd, CB(op)));
}

/* The close result: a failed close of a written file is an error too. */
static int closed(fsop *op, ssize_t res) {
  if (res < 0) fail(op, res);
  return S_DONE;
}

static int openfile(fsop *op, int flags) {
  op->phase = P_OPEN;
  return issued(op, uv_fs_open(LOOP(op), &op->req, op->path, flags, 0666,
                               CB(op)));
}

/* Room for the next chunk in buf; 0, or -1 when out of memory. */
static int grow(fsop *op) {
  size_t cap = op->cap ? op->cap : READ_CHUNK;
  char *b;
  if (op->cap - op->len >= READ_CHUNK) return 0;
  while (cap - op->len < READ_CHUNK) cap *= 2;
  if ((b = (char *)realloc(op->buf, cap)) == NULL) return -1;
  op->buf = b;
  op->cap = cap;
  return 0;
}

static int read_step(fsop *op, ssize_t res) {
  uv_buf_t b;
  size_t room;
  switch (op->phase) {
    case P_START: return openfile(op, O_RDONLY);
    case P_OPEN:
      if (res < 0) return fail(op, res);
      op->fd = (uv_file)res;
      if (abandoned(op)) return closefd(op);
      break;
    case P_IO:
      if (res <= 0 || abandoned(op)) {  /* EOF, error, or given up */
        if (res < 0) fail(op, res);
        return closefd(op);
      }
      op->len += (size_t)res;
      break;
    default: return closed(op, res);
  }
  if (grow(op) != 0) {
    fail(op, UV_ENOMEM);
    return closefd(op);
  }
  room = op->cap - op->len;
  b = uv_buf_init(op->buf + op->len, room < MAX_IO ? room : MAX_IO);
  op->phase = P_IO;
  return issued(op, uv_fs_read(LOOP(op), &op->req, op->fd, &b, 1, -1,
                               CB(op)));
}

/* write and append; a cancelled task's write still completes. */
static int write_step(fsop *op, ssize_t res) {
  uv_buf_t b;
  size_t left;
  switch (op->phase) {
    case P_START:
      return openfile(op, O_WRONLY | O_CREAT |
                          (op->kind == FS_APPEND ? O_APPEND : O_TRUNC));
    case P_OPEN:
      if (res < 0) return fail(op, res);
      op->fd = (uv_file)res;
      break;
    case P_IO:
      if (res < 0) {
        fail(op, res);
        return closefd(op);
      }
      op->off += (size_t)res;
      break;
    default: return closed(op, res);
  }
  if ((left = op->len - op->off) == 0) return closefd(op);
  b = uv_buf_init(op->buf + op->off, left < MAX_IO ? left : MAX_IO);
  op->phase = P_IO;
  return issued(op, uv_fs_write(LOOP(op), &op->req, op->fd, &b, 1, -1,
                                CB(op)));
}

/* remove: unlink; a directory (EISDIR on Linux, EPERM by POSIX) is
** removed with rmdir, whose error then counts unless it is ENOTDIR. */
static int remove_step(fsop *op, ssize_t res) {
  switch (op->phase) {
    case P_START:
      op->phase = P_OPEN;
      return issued(op, uv_fs_unlink(LOOP(op), &op->req, op->path, CB(op)));
    case P_OPEN:
      if (res != UV_EISDIR && res != UV_EPERM)
        return res < 0 ? fail(op, res) : S_DONE;
      op->err = (int)res;
      op->phase = P_IO;
      return issued(op, uv_fs_rmdir(LOOP(op), &op->req, op->path, CB(op)));
    default:
      if (res == 0) op->err = 0;
      else if (res != UV_ENOTDIR) op->err = (int)res;
      return S_DONE;
  }
}

/* The operations that are one request. */
static int single_step(fsop *op, ssize_t res) {
  uv_loop_t *lp = LOOP(op);
  uv_fs_t *r = &op->req;
  uv_fs_cb cb = CB(op);
  if (op->phase != P_START) {
    if (res < 0) return fail(op, res);
    if (op->kind == FS_STAT) op->st = r->statbuf;
    return S_DONE;
  }
  op->phase = P_END;
  switch (op->kind) {
    case FS_STAT: return issued(op, uv_fs_lstat(lp, r, op->path, cb));
    case FS_LIST: return issued(op, uv_fs_scandir(lp, r, op->path, 0, cb));
    case FS_RENAME:
      return issued(op, uv_fs_rename(lp, r, op->path, op->to, cb));
    default: return issued(op, uv_fs_mkdir(lp, r, op->path, op->mode, cb));
  }
}

static int step(fsop *op, ssize_t res) {
  switch (op->kind) {
    case FS_READ: return read_step(op, res);
    case FS_WRITE: case FS_APPEND: return write_step(op, res);
    case FS_REMOVE: return remove_step(op, res);
    default: return single_step(op, res);
  }
}

/* Run steps until one waits for the thread pool or the operation ends.
** At the end, a parked operation wakes its task or, abandoned, frees
** itself; an unparked one is left to its caller. */
static void drive(fsop *op) {
  int s;
  do {
    ssize_t res = op->req.result;
    if (op->phase != P_START && op->kind != FS_LIST)
      uv_fs_req_cleanup(&op->req);  /* a list keeps its entries */
    s = step(op, res);
  } while (s == S_AGAIN);
  if (s == S_PENDING) return;
  op->done = 1;
  if (!op->parked) return;
  if (cr_wait_wakeone(&op->waiters, CR_OK) == NULL)
    opfree(op);
}

static void on_fs(uv_fs_t *req) {
  drive(cr_container_of(req, fsop, req));
}

/* }================================================================= */


/* {=================================================================
** Results
** ================================================================== */

static int pusherror(lua_State *L, int e) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(e), uv_strerror(e));
  return 2;
}

static const char *kindname(uint64_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "link";
    default: return "other";
  }
}

static void setfield(lua_State *L, const char *k, lua_Number v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void settime(lua_State *L, const char *k, uv_timespec_t ts) {
  setfield(L, k, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
}

static void pushstat(lua_State *L, const uv_stat_t *st) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)st->st_size);
  lua_setfield(L, -2, "size");
  lua_pushstring(L, kindname(st->st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)(st->st_mode & 07777));
  lua_setfield(L, -2, "mode");
  settime(L, "mtime", st->st_mtim);
  settime(L, "atime", st->st_atim);
  settime(L, "ctime", st->st_ctim);
}

static int bynames(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The entries of a finished scandir, sorted; -1 when out of memory. Each
** uv_fs_scandir_next frees the previous entry, so the names are first
** copied into a table (whose strings stay valid while it is on the
** stack), then sorted into the result. */
static int pushlist(lua_State *L, fsop *op) {
  int i, n = 0;
  const char **names;
  uv_dirent_t ent;
  lua_newtable(L);
  while (uv_fs_scandir_next(&op->req, &ent) == 0) {
    lua_pushstring(L, ent.name);
    lua_rawseti(L, -2, ++n);
  }
  names = (const char **)malloc((n + 1) * sizeof *names);
  if (names == NULL) return -1;
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, -1, i + 1);
    names[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  qsort(names, n, sizeof *names, bynames);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  free(names);
  lua_remove(L, -2);
  return 0;
}

/* Push the results of a finished operation, then free it. */
static int results(lua_State *L, fsop *op) {
  int n = 1;
  if (op->err != 0)
    n = pusherror(L, op->err);
  else if (op->kind == FS_READ)
    lua_pushlstring(L, op->buf ? op->buf : "", op->len);
  else if (op->kind == FS_STAT)
    pushstat(L, &op->st);
  else if (op->kind == FS_LIST) {
    if (pushlist(L, op) != 0) {
      lua_pop(L, 1);
      n = pusherror(L, UV_ENOMEM);
    }
  }
  else
    lua_pushboolean(L, 1);
  opfree(op);
  return n;
}

/* }================================================================= */


/* {=================================================================
** The Lua functions
** ================================================================== */

static int fs_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  /* Cancelled: the operation was abandoned; it frees itself. */
  cr_task_outcome(L, cr_loop_get(L)->current);
  return results(L, (fsop *)ctx);
}

static const char *checkpath(lua_State *L, int arg, const char *fname,
                             size_t *len) {
  const char *s = lua_tolstring(L, arg, len);
  if (s == NULL)
    cr_argerror(L, arg, fname, lua_pushfstring(L, "string expected, got %s",
                                               luaL_typename(L, arg)));
  if (strlen(s) != *len)
    cr_argerror(L, arg, fname, "path contains a zero byte");
  return s;
}

static int optmode(lua_State *L, int arg, const char *fname) {
  lua_Integer m;
  int isnum;
  if (lua_isnoneornil(L, arg)) return 0777;
  m = lua_tointegerx(L, arg, &isnum);
  if (!isnum || m < 0 || m > 07777)
    cr_argerror(L, arg, fname, "mode must be an integer from 0 to 4095");
  return (int)m;
}

/* A new operation on 'path' (and 'to'), both copied; raises on ENOMEM. */
static fsop *newop(lua_State *L, cr_loop *lp, int kind, const char *path,
                   size_t plen, const char *to, size_t tlen) {
  fsop *op = (fsop *)calloc(1, sizeof *op + plen + tlen + 2);
  if (op == NULL) cr_nomem(L);
  op->loop = lp;
  op->kind = kind;
  op->fd = -1;
  op->mode = 0777;
  cr_list_init(&op->waiters);
  op->path = (char *)(op + 1);
  memcpy(op->path, path, plen + 1);
  op->to = op->path + plen + 1;
  if (to != NULL) memcpy(op->to, to, tlen + 1);
  return op;
}

/* Copy the data at 'arg' (a string: checked) into op; raises on ENOMEM. */
static void setdata(lua_State *L, fsop *op, int arg) {
  size_t len;
  const char *s = lua_tolstring(L, arg, &len);
  if (len == 0) return;
  if ((op->buf = (char *)malloc(len)) == NULL) {
    free(op);
    cr_nomem(L);
    return;
  }
  memcpy(op->buf, s, len);
  op->len = op->cap = len;
}

/* Check the arguments, then run the operation: at once outside a task,
** else on the thread pool while the calling task waits. */
static int start(lua_State *L, int kind, const char *fname) {
  cr_loop *lp = cr_loop_get(L);
  size_t plen, tlen = 0;
  const char *path = checkpath(L, 1, fname, &plen), *to = NULL;
  int mode = kind == FS_MKDIR ? optmode(L, 2, fname) : 0777;
  cr_task *me = NULL;
  fsop *op;
  if (kind == FS_RENAME) to = checkpath(L, 2, fname, &tlen);
  if ((kind == FS_WRITE || kind == FS_APPEND) && !lua_isstring(L, 2))
    cr_argerror(L, 2, fname, lua_pushfstring(L, "string expected, got %s",
                                             luaL_typename(L, 2)));
  if (lp->current != NULL) {
    me = cr_task_enter(L, lp, fname);
    cr_task_checkcancel(L, me);
  }
  op = newop(L, lp, kind, path, plen, to, tlen);
  op->mode = mode;
  if (kind == FS_WRITE || kind == FS_APPEND) setdata(L, op, 2);
  op->sync = me == NULL;
  drive(op);
  if (op->done) return results(L, op);
  op->parked = 1;
  lua_settop(L, 0);
  return cr_wait_on(L, me, &op->waiters, -1, (lua_KContext)op, fs_k);
}

/* fs.read(path) -> string | nil, err */
static int fs_read(lua_State *L) {
  return start(L, FS_READ, "fs.read");
}

/* fs.write(path, data) -> true | nil, err: create or truncate. */
static int fs_write(lua_State *L) {
  return start(L, FS_WRITE, "fs.write");
}

/* fs.append(path, data) -> true | nil, err */
static int fs_append(lua_State *L) {
  return start(L, FS_APPEND, "fs.append");
}

/* fs.stat(path) -> {size, type, mode, mtime, atime, ctime} | nil, err; a
** final symbolic link is not followed (type "link"). */
static int fs_stat(lua_State *L) {
  return start(L, FS_STAT, "fs.stat");
}

/* fs.list(path) -> sorted names | nil, err */
static int fs_list(lua_State *L) {
  return start(L, FS_LIST, "fs.list");
}

/* fs.remove(path) -> true | nil, err: a file or an empty directory. */
static int fs_remove(lua_State *L) {
  return start(L, FS_REMOVE, "fs.remove");
}

/* fs.rename(from, to) -> true | nil, err */
static int fs_rename(lua_State *L) {
  return start(L, FS_RENAME, "fs.rename");
}

/* fs.mkdir(path, [mode]) -> true | nil, err */
static int fs_mkdir(lua_State *L) {
  return start(L, FS_MKDIR, "fs.mkdir");
}

/* }================================================================= */


/* Adds module.fs; [loop, module] on the stack. */
void cr_fs_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"read", fs_read},
    {"write", fs_write},
    {"append", fs_append},
    {"stat", fs_stat},
    {"list", fs_list},
    {"remove", fs_remove},
    {"rename", fs_rename},
    {"mkdir", fs_mkdir},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;
  lua_createtable(L, 0, 8);
  cr_setfuncs(L, funcs, loopidx);
  lua_setfield(L, -2, "fs");
}
