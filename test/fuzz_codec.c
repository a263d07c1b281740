/*
** fuzz_codec.c
** libFuzzer target for the codec's decoder: any bytes given to
** cr_codec_decode_buffer (data only) must decode, or raise a Lua error
** that starts with "corrupt message", and never crash or leak. What
** decodes must encode again. Built only with -DCORUN_FUZZ=ON (clang); run
** by test/run.sh on a copy of test/corpus/codec.
*/

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "corun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* shared.c's metatable helper needs this from core.c; the decoder never
** makes a class. */
void cr_newclass(lua_State *L, const char *name, const luaL_Reg *meta,
                 const luaL_Reg *methods, int loopidx) {
  (void)L; (void)name; (void)meta; (void)methods; (void)loopidx;
  abort();
}

/* decode(data, size): decode, then encode the values again. */
static int decode(lua_State *L) {
  const char *p = (const char *)lua_touserdata(L, 1);
  size_t len = (size_t)lua_tointeger(L, 2);
  int n;
  lua_settop(L, 0);
  n = cr_codec_decode_buffer(L, p, len, 0);
  cr_msg_free(cr_codec_encode(L, 1, n, "args", 0));
  return n;
}

static int iscorrupt(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  return msg != NULL && strncmp(msg, "corrupt message", 15) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  static unsigned runs;
  int status;
  if (L == NULL) L = luaL_newstate();
  lua_pushcfunction(L, decode);
  lua_pushlightuserdata(L, (void *)data);
  lua_pushinteger(L, (lua_Integer)size);
  status = lua_pcall(L, 2, LUA_MULTRET, 0);
  if (status != LUA_OK && status != LUA_ERRMEM && !iscorrupt(L)) abort();
  lua_settop(L, 0);
  if (++runs % 256 == 0) lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
