/*
** physical.c: the stock-Lua physical limit for the spawn and switch
** workloads, measured from C on liblua5.4 with no scheduler at all.
**
**   pair     a bare lua_resume / lua_yield pair on one coroutine (a Lua loop
**            calling coroutine.yield, resumed from C): switches/s counts
**            both directions, as pingpong does
**   task     lua_newthread + resume to the first yield + resume to the end
**            + collect, one coroutine at a time (memory is reused at once)
**   batch    the same, but the spawn workload's shape: N coroutines are
**            created and run to their first yield, then each is resumed to
**            its end (N alive at once), then all are collected
**   object   the spawn workload with corun's objects but no scheduler: N
**            task userdata, each owning a coroutine, are created, then each
**            runs to its first yield, then to its end. What a task costs
**            stock Lua when it is a userdata owning a coroutine
**
** Prints "RESULT physical pair=... task=... batch=... object=... n=N
** peak_kb=K" (rates per second). BENCH_SCALE scales N (200,000) and the loop counts.
** Build: cc -O2 physical.c -I/usr/include/lua5.4 -llua5.4 -lm
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long scaled(long n) {
  const char *s = getenv("BENCH_SCALE");
  double f = s != NULL && *s != '\0' ? atof(s) : 1.0;
  return (long)(n * f);
}

static long peak_kb(void) {
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
  fclose(f);
  return kb;
}

static void check(lua_State *L, int status) {
  if (status != LUA_OK && status != LUA_YIELD) {
    fprintf(stderr, "physical: %s\n", lua_tostring(L, -1));
    exit(1);
  }
}

/* Resume 'co' with 'nargs' values on its stack; drop what it yields. */
static int step(lua_State *L, lua_State *co, int nargs) {
  int nres, status = lua_resume(co, L, nargs, &nres);
  check(co, status);
  lua_pop(co, nres);
  return status;
}

/* pair: one coroutine yields 'n' times in a Lua loop. */
static double pair(lua_State *L, long n) {
  lua_State *co;
  double t0, dt;
  long i;
  luaL_loadstring(L, "local yield = coroutine.yield "
                     "while true do yield() end");
  co = lua_newthread(L);
  lua_insert(L, -2);
  lua_xmove(L, co, 1);
  step(L, co, 0);  /* to the first yield */
  t0 = now();
  for (i = 0; i < n; i++) step(L, co, 0);
  dt = now() - t0;
  lua_pop(L, 1);
  return dt > 0 ? 2.0 * n / dt : 0;
}

/* The body every task runs: yield once, return the argument. */
static void pushbody(lua_State *L) {
  luaL_loadstring(L, "local yield = coroutine.yield "
                     "return function(i) yield() return i end");
  lua_call(L, 0, 1);
}

/* A new coroutine running the body at 'fidx' with argument i; left on L's
** stack, run to its first yield. */
static lua_State *start(lua_State *L, int fidx, long i) {
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, fidx);
  lua_pushinteger(L, i);
  lua_xmove(L, co, 2);
  step(L, co, 1);
  return co;
}

/* Resume 'co' (at its last yield) to its end; returns what it returned. */
static long finish(lua_State *L, lua_State *co) {
  int nres;
  long v;
  check(co, lua_resume(co, L, 0, &nres));
  v = (long)lua_tointeger(co, -1);
  lua_pop(co, nres);
  return v;
}

/* End of a timed run that began at 't0': drop everything above the body
** at 'fidx' and below, check the sum of the n results, return the rate. */
static double rate(lua_State *L, int fidx, double t0, long n, long sum,
                   const char *what) {
  double dt;
  lua_settop(L, fidx - 1);  /* every thread is garbage now */
  dt = now() - t0;
  if (sum != n * (n + 1) / 2) {
    fprintf(stderr, "physical: %s: bad sum\n", what);
    exit(1);
  }
  return dt > 0 ? n / dt : 0;
}

/* task: create, run to the first yield, run to the end, drop: n times. */
static double task(lua_State *L, long n) {
  int fidx;
  long i, sum = 0;
  double t0;
  pushbody(L);
  fidx = lua_gettop(L);
  lua_gc(L, LUA_GCCOLLECT);
  t0 = now();
  for (i = 1; i <= n; i++) {
    sum += finish(L, start(L, fidx, i));
    lua_pop(L, 1);  /* the thread: garbage from here on */
  }
  return rate(L, fidx, t0, n, sum, "task");
}

/* Start a timed run over n coroutines: push the body (its index is
** returned) and a list for n values above it, after a full collection;
** the clock starts at '*t0'. */
static int begin(lua_State *L, long n, double *t0) {
  pushbody(L);
  lua_gc(L, LUA_GCCOLLECT);
  *t0 = now();
  lua_createtable(L, (int)n, 0);
  return lua_gettop(L) - 1;
}

/* batch: n coroutines alive at once (the spawn workload's shape). */
static double batch(lua_State *L, long n) {
  long i, sum = 0;
  double t0;
  int fidx = begin(L, n, &t0), list = fidx + 1;
  for (i = 1; i <= n; i++) {
    start(L, fidx, i);
    lua_rawseti(L, list, i);
  }
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    sum += finish(L, lua_tothread(L, -1));
    lua_pop(L, 1);
  }
  return rate(L, fidx, t0, n, sum, "batch");
}

/* The size of corun's task userdata (struct cr_task) on x86-64. */
#define TASK_SIZE 112

/* object: the spawn workload's shape with corun's objects and no scheduler:
** n task userdata (two user values, the first owning a new coroutine that
** holds the body and its argument) are created, listed and anchored; then
** each coroutine runs to its first yield; then each runs to its end and is
** unanchored; then all are collected. */
static double object(lua_State *L, long n) {
  long i, sum = 0;
  double t0;
  int fidx = begin(L, n, &t0), list = fidx + 1, anchors = fidx + 2;
  lua_newtable(L);  /* grown as it fills, as corun's anchor table is */
  anchors = lua_gettop(L);
  for (i = 1; i <= n; i++) {  /* spawn */
    lua_State *co;
    lua_newuserdatauv(L, TASK_SIZE, 2);
    co = lua_newthread(L);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, fidx);
    lua_pushinteger(L, i);
    lua_xmove(L, co, 2);
    lua_pushvalue(L, -1);
    lua_rawseti(L, anchors, i);
    lua_rawseti(L, list, i);
  }
  for (i = 1; i <= n; i++) {  /* the first turn: each to its yield */
    lua_rawgeti(L, list, i);
    lua_getiuservalue(L, -1, 1);
    step(L, lua_tothread(L, -1), 1);
    lua_pop(L, 2);
  }
  for (i = 1; i <= n; i++) {  /* the second: each to its end */
    lua_rawgeti(L, list, i);
    lua_getiuservalue(L, -1, 1);
    sum += finish(L, lua_tothread(L, -1));
    lua_pushnil(L);
    lua_rawseti(L, anchors, i);
    lua_pop(L, 2);
  }
  return rate(L, fidx, t0, n, sum, "object");
}

/* 'run' in a child process, so that each of batch and object starts on a heap that has
** not yet grown (fresh pages cost the kernel time, a reused heap does not). */
static long child_peak_kb = -1;  /* the largest child's peak */

static double fresh(lua_State *L, long n, double (*run)(lua_State *, long)) {
  double r[2] = {0, 0};  /* rate, the child's peak_kb */
  int fd[2], status;
  pid_t pid;
  if (pipe(fd) != 0 || (pid = fork()) < 0) {
    perror("physical");
    exit(1);
  }
  if (pid == 0) {
    r[0] = run(L, n);
    r[1] = (double)peak_kb();
    _exit(write(fd[1], r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
  }
  close(fd[1]);
  if (read(fd[0], r, sizeof r) != (ssize_t)sizeof r ||
      waitpid(pid, &status, 0) != pid || status != 0) {
    fprintf(stderr, "physical: batch child failed\n");
    exit(1);
  }
  close(fd[0]);
  if ((long)r[1] > child_peak_kb) child_peak_kb = (long)r[1];
  return r[0];
}

int main(void) {
  lua_State *L = luaL_newstate();
  long n = scaled(200000);
  double rpair, rtask, rbatch, robject;
  luaL_openlibs(L);
  rpair = pair(L, 10 * n);
  rtask = task(L, 5 * n);
  rbatch = fresh(L, n, batch);
  robject = fresh(L, n, object);
  printf("RESULT physical pair=%.1f task=%.1f batch=%.1f object=%.1f n=%ld "
         "peak_kb=%ld\n", rpair, rtask, rbatch, robject, n,
         peak_kb() > child_peak_kb ? peak_kb() : child_peak_kb);
  lua_close(L);
  return 0;
}
