/*
** shared.c
** Shareable handles: a C object with an atomic reference count, boxed in a
** userdata per Lua state (Lanes' "deep" userdata). Each box holds one
** reference, dropped by its __gc. The metatable of a box has a field
** __corun_shared (a light userdata: the object's type), which is how the
** codec recognises a box of any shareable type.
*/

#include <stdatomic.h>

#include "corun.h"

#define SHARED_KEY "__corun_shared"

void cr_shared_init(cr_shared *s, const cr_shared_type *type) {
  atomic_init(&s->refs, 1);
  s->type = type;
}

void cr_shared_retain(cr_shared *s) {
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void cr_shared_release(cr_shared *s) {
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
    s->type->destroy(s);
}

/* The object boxed at 'idx', or NULL when it is not a box. */
cr_shared *cr_shared_test(lua_State *L, int idx) {
  cr_shared **box = (cr_shared **)lua_touserdata(L, idx);
  const void *type = NULL;
  if (box == NULL || lua_type(L, idx) != LUA_TUSERDATA ||
      lua_rawlen(L, idx) != sizeof *box || !lua_getmetatable(L, idx))
    return NULL;
  if (lua_getfield(L, -1, SHARED_KEY) == LUA_TLIGHTUSERDATA)
    type = lua_touserdata(L, -1);
  lua_pop(L, 2);
  if (type == NULL || *box == NULL || (*box)->type != type) return NULL;
  return *box;
}

cr_shared *cr_shared_check(lua_State *L, int idx, const cr_shared_type *t) {
  cr_shared *s = cr_shared_test(L, idx);
  if (s == NULL || s->type != t) luaL_typeerror(L, idx, t->mtname);
  return s;
}

static int box_gc(lua_State *L) {
  cr_shared **box = (cr_shared **)lua_touserdata(L, 1);
  if (*box != NULL) {
    cr_shared_release(*box);
    *box = NULL;
  }
  return 0;
}

/* Push a new box for 's', taking over one reference the caller holds. */
void cr_shared_push(lua_State *L, cr_shared *s) {
  cr_shared **box = (cr_shared **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;  /* closed-first */
  luaL_setmetatable(L, s->type->mtname);
  *box = s;
}

/* A metatable for boxes of 'type', with the loop as upvalue 1 of each
** function, __gc dropping the box's reference. */
void cr_shared_newclass(lua_State *L, const cr_shared_type *type,
                        const luaL_Reg *meta, const luaL_Reg *methods,
                        int loopidx) {
  cr_newclass(L, type->mtname, meta, methods, loopidx);
  luaL_getmetatable(L, type->mtname);
  lua_pushlightuserdata(L, (void *)type);
  lua_setfield(L, -2, SHARED_KEY);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}
