/*
** main.c
** The corun runner: runs a Lua script as the main task of a corun loop.
**   corun script.lua args...   corun -e CODE args...   corun - args...
** Exit status: 0 when all went well, 1 when the main chunk or any task
** failed with an error nobody retrieved (or a deadlock), 130 after SIGINT,
** 2 for a usage error or a script that cannot be read.
*/

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_corun_core(lua_State *L);
void cr_thread_tostring(lua_State *L);
int cr_thread_unretrieved(void);

static const char *usage =
  "usage: corun [options] [script [args...]]\n"
  "  script [args...]   run this Lua file as the main task, with arg[1..]\n"
  "                     the args ('-' reads the script from stdin)\n"
  "  -e CODE [args...]  run CODE as the main task, with arg[1..] the args\n"
  "  -v, --version      print the version and exit\n"
  "  -h, --help         print this help and exit\n"
  "The process lives while tasks, timers or I/O remain. Exit status: 0 when\n"
  "all went well, 1 when the script or a task failed with an error nobody\n"
  "retrieved (or a deadlock), 2 for a usage error (no script, an unknown\n"
  "option, -e without CODE) or a script that cannot be read, 130 after\n"
  "SIGINT.\n"
  "Specs: corun-busted [busted options] [specs...] runs busted under Lua 5.4\n"
  "with corun on the path.\n";

/* Directory of this executable, for finding the installed Lua files. */
static int exedir(char *buf, size_t size) {
  ssize_t n;
  char *slash;
  buf[0] = '\0';  /* callers read it even when this fails */
  n = readlink("/proc/self/exe", buf, size - 1);
  if (n <= 0) { buf[0] = '\0'; return 0; }
  buf[n] = '\0';
  slash = strrchr(buf, '/');
  if (slash == NULL) { buf[0] = '\0'; return 0; }
  *slash = '\0';
  return 1;
}

/* Put corun's Lua files first on package.path: from the source tree when
** this binary is the one in the build tree, else next to the install. */
static void setpath(lua_State *L) {
  char dir[PATH_MAX];
  luaL_Buffer b;
  lua_getglobal(L, "package");
  luaL_buffinit(L, &b);
  if (exedir(dir, sizeof dir) && strcmp(dir, CORUN_BUILD_BINDIR) == 0) {
    luaL_addstring(&b, CORUN_SOURCE_LUADIR "/?.lua;");
    luaL_addstring(&b, CORUN_SOURCE_LUADIR "/?/init.lua;");
  }
  else {
    if (dir[0] != '\0') {
      lua_pushfstring(L, "%s/../share/lua/5.4/?.lua;"
                         "%s/../share/lua/5.4/?/init.lua;", dir, dir);
      luaL_addvalue(&b);
    }
    luaL_addstring(&b, CORUN_INSTALL_LUADIR "/?.lua;");
    luaL_addstring(&b, CORUN_INSTALL_LUADIR "/?/init.lua;");
  }
  lua_getfield(L, -2, "path");
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  lua_setfield(L, -2, "path");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_corun_core);
  lua_setfield(L, -2, "corun.core");
  lua_pop(L, 2);
}

/* The global 'arg', as lua.c builds it: arg[0] is the script. */
static void setargs(lua_State *L, char **argv, int argc, int script) {
  int i;
  lua_createtable(L, argc - script - 1, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Load the main chunk; on failure print one line and return the exit
** status (2: cannot read it, 1: it does not compile), else 0. */
static int loadmain(lua_State *L, const char *what, const char *code) {
  int status;
  if (code != NULL)
    status = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
  else if (strcmp(what, "-") == 0)
    status = luaL_loadfile(L, NULL);
  else
    status = luaL_loadfile(L, what);
  if (status == LUA_OK) return 0;
  fprintf(stderr, "corun: %s\n", lua_tostring(L, -1));
  return status == LUA_ERRFILE ? 2 : 1;
}

/* core.run("script", chunk, args...) → exit status. */
static int runmain(lua_State *L, int nargs) {
  int status;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "corun.core");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "run");
  lua_remove(L, -2);
  lua_pushliteral(L, "script");
  lua_rotate(L, -nargs - 3, 2);
  if (lua_pcall(L, nargs + 2, 1, 0) != LUA_OK) {
    cr_thread_tostring(L);  /* its __tostring may raise: protected */
    fprintf(stderr, "corun: %s\n", lua_tostring(L, -1));
    return 1;
  }
  status = (int)lua_tointeger(L, -1);
  return status;
}

static int pushargs(lua_State *L, char **argv, int argc, int first) {
  int i;
  luaL_checkstack(L, argc - first, "too many arguments");
  for (i = first; i < argc; i++) lua_pushstring(L, argv[i]);
  return argc - first;
}

int main(int argc, char **argv) {
  lua_State *L;
  const char *code = NULL, *script;
  int first, status;
  if (argc < 2) {
    fputs(usage, stderr);
    return 2;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0) {
    printf("corun %s\n", CORUN_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  if (strcmp(argv[1], "-e") == 0) {
    if (argc < 3) {
      fputs("corun: '-e' needs an argument\n", stderr);
      return 2;
    }
    code = argv[2];
    script = argv[1];
    first = 3;
  }
  else if (argv[1][0] == '-' && argv[1][1] != '\0') {
    fprintf(stderr, "corun: unknown option '%s' (try --help)\n", argv[1]);
    return 2;
  }
  else {
    script = argv[1];
    first = 2;
  }
  L = luaL_newstate();
  if (L == NULL) {
    fputs("corun: cannot create Lua state: not enough memory\n", stderr);
    return 1;
  }
  luaL_openlibs(L);
  setpath(L);
  setargs(L, argv, argc, first - 1);
  if ((status = loadmain(L, script, code)) != 0) {
    lua_close(L);
    return status;
  }
  status = runmain(L, pushargs(L, argv, argc, first));
  lua_close(L);  /* releases the futures still referenced */
  if (status == 0 && cr_thread_unretrieved() > 0) status = 1;
  return status;
}
