/*
** codec.c
** Values copied between Lua states as a flat message: what crosses threads
** (thread arguments and results, channel items, futures). A message is one
** malloc'd block that needs no Lua state, so any thread may free it.
**
** Format (native byte order: the bytes never leave the process):
**   header   'C' flags:u8 n:u32 nrefs:u32, then n values
**   value    tag:u8 payload
**     NIL FALSE TRUE   nothing
**     INT FLT          8 raw bytes (lua_Integer, lua_Number)
**     STR FUNC         len:u64, then len bytes (FUNC: lua_dump's bytecode)
**     TABLE            narr:u32 nhash:u32, narr values, nhash key/value
**     REF              id:u32: an earlier TABLE or FUNC (ids number them
**                      in message order, from 0), so sharing and cycles
**                      survive
**     SHARED           a cr_shared pointer
**
** Invariants:
** - A message from cr_codec_encode holds one reference to each SHARED in
**   it (header flag M_SHARED says there are some); cr_msg_free walks the
**   message and drops them. Each decode takes a reference per box pushed.
** - The encoder builds into a buffer owned by its C frame or by a userdata
**   on the Lua stack, so an error leaks nothing; references are taken only
**   on the finished copy, while the boxes are still on the stack.
** - A message of at most CR_SLOT_BYTES bytes may be kept in place, in a
**   cr_msgslot (a channel's ring, a wait case), instead of malloc'd: the
**   same bytes, the same references.
** - The first table or function of a message is one of its top-level
**   values (any other sits inside a table met before it), so it stays on
**   the stack while the message is encoded or decoded: the encoder knows
**   it by address and the decoder by stack slot, and the table of those
**   seen is made only for a message with a second one.
** - The decoder checks every read. Raw bytes (cr_codec_decode_buffer) may
**   be anything: they never yield a SHARED (a pointer) and yield a FUNC
**   (bytecode, which Lua does not verify) only when the caller asks.
** - Both sides refuse tables nested deeper than MAXDEPTH, which also
**   bounds their C recursion.
*/

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corun.h"

#define MAXDEPTH 100          /* deepest table nesting */
#define MAXDEPTH_S "100"
#define KEYSHOW 40            /* bytes of a string key shown in a path */
#define LOCALBUF 256          /* bytes encoded before using a userdata */
#define PRESIZE 4096          /* slots a decoded table may always start with */

#define MAGIC 'C'
#define M_SHARED 1            /* header flag: the message holds handles */
#define HEADER 10             /* 'C', flags, n, nrefs */
#define TRUSTED 0x100         /* decoding a message cr_codec_encode made */

struct cr_msg {
  size_t len;
  char data[];
};

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLT, T_STR, T_FUNC, T_TABLE,
       T_REF, T_SHARED };

/* {=================================================================
** Encoding
** ================================================================== */

enum { P_INDEX, P_VALUE, P_KEY };  /* path steps: [i], [key], the key */

typedef struct step {
  int kind;
  int idx;                    /* P_VALUE, P_KEY: the key's stack index */
  lua_Integer i;              /* P_INDEX */
} step;

typedef struct enc {
  lua_State *L;
  char *p;                    /* the buffer: 'local' or the userdata */
  size_t n, cap;
  int buf;                    /* stack slot of the buffer userdata */
  int seen;                   /* stack slot of table/function -> id, or nil */
  int firstidx;               /* the first table or function: stack slot */
  const void *first;          /* and address */
  int flags;
  uint32_t nrefs;
  unsigned char hflags;       /* M_* */
  const char *what;
  step path[MAXDEPTH + 1];    /* where the value being encoded sits */
  char local[LOCALBUF];
} enc;

static void encode_value(enc *e, int idx, int level);
static int encode_seen(enc *e, int idx);

/* Grow the buffer to hold 'k' more bytes (they do not fit). */
static void grow(enc *e, size_t k) {
  size_t cap = e->cap;
  char *p;
  while (cap - e->n < k) {
    if (cap > SIZE_MAX / 2) luaL_error(e->L, "message too large");
    cap *= 2;
  }
  p = (char *)lua_newuserdatauv(e->L, cap, 0);
  memcpy(p, e->p, e->n);
  lua_replace(e->L, e->buf);  /* the old buffer becomes garbage */
  e->p = p;
  e->cap = cap;
}

static inline void put(enc *e, const void *s, size_t k) {
  if (e->cap - e->n < k) grow(e, k);
  memcpy(e->p + e->n, s, k);  /* inlined: k is mostly a constant */
  e->n += k;
}

static inline void putbyte(enc *e, int b) {
  unsigned char c = (unsigned char)b;
  put(e, &c, 1);
}

static inline void putu32(enc *e, uint32_t v) {
  put(e, &v, sizeof v);
}

static inline void putu64(enc *e, uint64_t v) {
  put(e, &v, sizeof v);
}

static int isname(const char *s, size_t len) {
  static const char *const reserved[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for",
    "function", "goto", "if", "in", "local", "nil", "not", "or", "repeat",
    "return", "then", "true", "until", "while", NULL
  };
  size_t i;
  int j;
  if (len == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9')))
      return 0;
  }
  for (j = 0; reserved[j] != NULL; j++)
    if (strcmp(s, reserved[j]) == 0) return 0;
  return 1;
}

/* Push a string key as a path step: .name or ["text"] (cut after KEYSHOW
** bytes, escaped as in Lua source). */
static void pushstrkey(lua_State *L, const char *s, size_t len) {
  char buf[4 * KEYSHOW + 16], *q = buf;
  size_t i;
  if (len <= KEYSHOW && isname(s, len)) {
    lua_pushfstring(L, ".%s", s);
    return;
  }
  *q++ = '[';
  *q++ = '"';
  for (i = 0; i < len && i < KEYSHOW; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      *q++ = '\\';
      *q++ = (char)c;
    }
    else if (c >= 32 && c < 127) *q++ = (char)c;
    else q += snprintf(q, 5, "\\%03d", c);
  }
  if (len > KEYSHOW) q += snprintf(q, 4, "...");
  *q++ = '"';
  *q++ = ']';
  lua_pushlstring(L, buf, (size_t)(q - buf));
}

/* Push path step 'st' as text: [3], .name, ["a b"], [true], [1.5],
** [table: 0x...], or <key table: 0x...> for something inside a key. */
static void pushstep(lua_State *L, const step *st) {
  int idx = st->idx;
  if (st->kind == P_INDEX)
    lua_pushfstring(L, "[%I]", (LUAI_UACINT)st->i);
  else if (st->kind == P_KEY)
    lua_pushfstring(L, "<key %s: %p>", luaL_typename(L, idx),
                    lua_topointer(L, idx));
  else if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    pushstrkey(L, s, len);
  }
  else if (lua_isinteger(L, idx))
    lua_pushfstring(L, "[%I]", (LUAI_UACINT)lua_tointeger(L, idx));
  else if (lua_type(L, idx) == LUA_TNUMBER)
    lua_pushfstring(L, "[%f]", (LUAI_UACNUMBER)lua_tonumber(L, idx));
  else if (lua_type(L, idx) == LUA_TBOOLEAN)
    lua_pushstring(L, lua_toboolean(L, idx) ? "[true]" : "[false]");
  else
    lua_pushfstring(L, "[%s: %p]", luaL_typename(L, idx),
                    lua_topointer(L, idx));
}

/* Raise "cannot send <path>: <why>" for the value at path[0..level-1]. */
static void fail(enc *e, int level, const char *why) {
  lua_State *L = e->L;
  int i;
  luaL_checkstack(L, level + 3, NULL);
  lua_pushstring(L, e->what);
  for (i = 0; i < level; i++) pushstep(L, &e->path[i]);
  lua_concat(L, level + 1);
  luaL_error(L, "cannot send %s: %s", lua_tostring(L, -1), why);
}

static void encode_number(enc *e, int idx) {
  lua_State *L = e->L;
  if (lua_isinteger(L, idx)) {
    lua_Integer i = lua_tointeger(L, idx);
    putbyte(e, T_INT);
    put(e, &i, sizeof i);
  }
  else {
    lua_Number x = lua_tonumber(L, idx);
    putbyte(e, T_FLT);
    put(e, &x, sizeof x);
  }
}

static void encode_string(enc *e, int idx) {
  size_t len;
  const char *s = lua_tolstring(e->L, idx, &len);
  putbyte(e, T_STR);
  putu64(e, len);
  put(e, s, len);
}

static int writer(lua_State *L, const void *b, size_t size, void *ud) {
  (void)L;
  put((enc *)ud, b, size);  /* may replace the buffer: stack balanced */
  return 0;
}

/* A Lua function whose only upvalue, if any, is _ENV: its bytecode. */
static void encode_function(enc *e, int idx, int level) {
  lua_State *L = e->L;
  const char *up;
  size_t at;
  uint64_t len;
  int i;
  if (!(e->flags & CR_CODEC_FUNCTIONS))
    fail(e, level, "functions are not allowed here");
  if (lua_iscfunction(L, idx)) fail(e, level, "C function");
  for (i = 1; (up = lua_getupvalue(L, idx, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (i > 1 || strcmp(up, "_ENV") != 0)
      fail(e, level, lua_pushfstring(L, "function with upvalue '%s'", up));
  }
  if (encode_seen(e, idx)) return;
  putbyte(e, T_FUNC);
  at = e->n;
  putu64(e, 0);
  lua_pushvalue(L, idx);
  lua_dump(L, writer, e, 0);
  lua_pop(L, 1);
  len = e->n - at - sizeof len;
  memcpy(e->p + at, &len, sizeof len);
}

static void encode_userdata(enc *e, int idx, int level) {
  cr_shared *s = cr_shared_test(e->L, idx);
  if (s == NULL) fail(e, level, "userdata value");
  if (e->flags & CR_CODEC_LOCAL)
    fail(e, level, "handles cannot leave this process");
  putbyte(e, T_SHARED);
  put(e, &s, sizeof s);
  e->hflags |= M_SHARED;
}

/* Write a REF and return 1 if the table or function at 'idx' was seen;
** else give it the next id and return 0. */
static int encode_seen(enc *e, int idx) {
  lua_State *L = e->L;
  const void *p = lua_topointer(L, idx);
  if (e->nrefs == 0) {  /* a top-level value: known by address alone */
    e->first = p;
    e->firstidx = idx;
    e->nrefs = 1;
    return 0;
  }
  if (p == e->first) {
    putbyte(e, T_REF);
    putu32(e, 0);
    return 1;
  }
  if (e->nrefs == 1) {  /* a second one: now a table of them */
    lua_newtable(L);
    lua_pushvalue(L, e->firstidx);
    lua_pushinteger(L, 0);
    lua_rawset(L, -3);
    lua_replace(L, e->seen);
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->seen) == LUA_TNUMBER) {
    uint32_t id = (uint32_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    putbyte(e, T_REF);
    putu32(e, id);
    return 1;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushinteger(L, e->nrefs++);
  lua_rawset(L, e->seen);
  return 0;
}

/* Raw contents only: metatables are not copied. One traversal: while its
** keys come as 1, 2, 3, ... (lua_next gives the array part first, in
** order) the values go to the array part; from the first key that breaks
** the run, every pair goes to the hash part. */
static void encode_table(enc *e, int idx, int level) {
  lua_State *L = e->L;
  uint32_t narr = 0, nhash = 0;
  int inarray = 1;
  size_t at;
  if (encode_seen(e, idx)) return;
  if (level > MAXDEPTH)
    fail(e, level, "table nested deeper than " MAXDEPTH_S " levels");
  if (level > 1) luaL_checkstack(L, 4, NULL);  /* encode() checked level 1 */
  putbyte(e, T_TABLE);
  at = e->n;
  putu32(e, 0);
  putu32(e, 0);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    if (inarray && lua_isinteger(L, top - 1) &&
        lua_tointeger(L, top - 1) == (lua_Integer)narr + 1) {
      e->path[level].kind = P_INDEX;
      e->path[level].i = ++narr;
    }
    else {
      inarray = 0;
      e->path[level].kind = P_KEY;
      e->path[level].idx = top - 1;
      encode_value(e, top - 1, level + 1);
      e->path[level].kind = P_VALUE;
      nhash++;
    }
    encode_value(e, top, level + 1);
    lua_pop(L, 1);
  }
  memcpy(e->p + at, &narr, sizeof narr);
  memcpy(e->p + at + sizeof narr, &nhash, sizeof nhash);
}

static void encode_value(enc *e, int idx, int level) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: putbyte(e, T_NIL); break;
    case LUA_TBOOLEAN:
      putbyte(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
      break;
    case LUA_TNUMBER: encode_number(e, idx); break;
    case LUA_TSTRING: encode_string(e, idx); break;
    case LUA_TTABLE: encode_table(e, idx, level); break;
    case LUA_TFUNCTION: encode_function(e, idx, level); break;
    case LUA_TUSERDATA: encode_userdata(e, idx, level); break;
    case LUA_TLIGHTUSERDATA: fail(e, level, "light userdata value"); break;
    case LUA_TTHREAD: fail(e, level, "coroutine value"); break;
    default: fail(e, level, "unsupported value"); break;
  }
}

/* Encode values first..first+n-1 into e->p[0..e->n-1]. Leaves two slots
** (the buffer and the seen table) on the stack. */
static void encode(enc *e, lua_State *L, int first, int n, const char *what,
                   int flags) {
  int i;
  uint32_t n32 = (uint32_t)n;
  first = lua_absindex(L, first);
  luaL_checkstack(L, 8, NULL);
  e->L = L;
  e->p = e->local;
  e->n = 0;
  e->cap = sizeof e->local;
  e->flags = flags;
  e->nrefs = 0;
  e->hflags = 0;
  e->what = what != NULL ? what : "values";
  lua_pushnil(L);
  e->buf = lua_gettop(L);
  lua_pushnil(L);
  e->seen = lua_gettop(L);
  putbyte(e, MAGIC);
  putbyte(e, 0);
  putu32(e, n32);
  putu32(e, 0);
  for (i = 0; i < n; i++) {
    e->path[0].kind = P_INDEX;
    e->path[0].i = i + 1;
    encode_value(e, first + i, 1);
  }
  e->p[1] = (char)e->hflags;
  memcpy(e->p + 6, &e->nrefs, sizeof e->nrefs);
}

/* }================================================================= */

/* {=================================================================
** Walking a message (ours: trusted) for its handles
** ================================================================== */

typedef void (*cr_visit)(cr_shared *s);

static const char *walk(const char *p, cr_visit fn) {
  uint64_t len, k;
  uint32_t narr, nhash;
  cr_shared *s;
  switch (*p++) {
    case T_INT: case T_FLT: return p + 8;
    case T_STR: case T_FUNC:
      memcpy(&len, p, sizeof len);
      return p + sizeof len + len;
    case T_REF: return p + 4;
    case T_SHARED:
      memcpy(&s, p, sizeof s);
      fn(s);
      return p + sizeof s;
    case T_TABLE:
      memcpy(&narr, p, 4);
      memcpy(&nhash, p + 4, 4);
      p += 8;
      for (k = (uint64_t)narr + 2 * (uint64_t)nhash; k > 0; k--)
        p = walk(p, fn);
      return p;
    default: return p;  /* NIL, FALSE, TRUE */
  }
}

static void walkdata(const char *data, cr_visit fn) {
  const char *p = data + HEADER;
  uint32_t n;
  if (!(data[1] & M_SHARED)) return;
  memcpy(&n, data + 2, sizeof n);
  for (; n > 0; n--) p = walk(p, fn);
}

/* }================================================================= */

cr_msg *cr_codec_encode(lua_State *L, int first, int n, const char *what,
                        int flags) {
  enc e;
  cr_msg *m;
  int top = lua_gettop(L);
  encode(&e, L, first, n, what, flags);
  m = (cr_msg *)malloc(sizeof *m + e.n);
  if (m == NULL) luaL_error(L, "not enough memory");
  m->len = e.n;
  memcpy(m->data, e.p, e.n);
  lua_settop(L, top);
  walkdata(m->data, cr_shared_retain);
  return m;
}

void cr_msg_free(cr_msg *m) {
  if (m == NULL) return;
  walkdata(m->data, cr_shared_release);
  free(m);
}

size_t cr_msg_size(const cr_msg *m) {
  return m->len;
}

/* One nil, boolean, number or short string written straight into slot
** 's' (the bytes encode() would write); 0 for anything else. */
static int encode_scalar(lua_State *L, int idx, cr_msgslot *s) {
  char *p = s->data;
  uint32_t one = 1, none = 0;
  size_t len;
  const char *str;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: p[HEADER] = T_NIL; len = HEADER + 1; break;
    case LUA_TBOOLEAN:
      p[HEADER] = lua_toboolean(L, idx) ? T_TRUE : T_FALSE;
      len = HEADER + 1;
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        p[HEADER] = T_INT;
        memcpy(p + HEADER + 1, &i, sizeof i);
      }
      else {
        lua_Number x = lua_tonumber(L, idx);
        p[HEADER] = T_FLT;
        memcpy(p + HEADER + 1, &x, sizeof x);
      }
      len = HEADER + 9;
      break;
    case LUA_TSTRING: {
      uint64_t n;
      str = lua_tolstring(L, idx, &len);
      if (len > CR_SLOT_BYTES - (HEADER + 9)) return 0;
      n = len;
      p[HEADER] = T_STR;
      memcpy(p + HEADER + 1, &n, sizeof n);
      memcpy(p + HEADER + 9, str, len);
      len += HEADER + 9;
      break;
    }
    default: return 0;
  }
  p[0] = MAGIC;
  p[1] = 0;
  memcpy(p + 2, &one, sizeof one);
  memcpy(p + 6, &none, sizeof none);
  s->big = NULL;
  s->len = (uint32_t)len;
  return 1;
}

/* Encode into slot 's': in place when small enough, else malloc'd. */
void cr_codec_encode_slot(lua_State *L, int first, int n, const char *what,
                          int flags, cr_msgslot *s) {
  enc e;
  int top = lua_gettop(L);
  if (n == 1 && encode_scalar(L, first, s)) return;
  encode(&e, L, first, n, what, flags);
  if (e.n > CR_SLOT_BYTES) {
    cr_msg *m = (cr_msg *)malloc(sizeof *m + e.n);
    if (m == NULL) luaL_error(L, "not enough memory");
    m->len = e.n;
    memcpy(m->data, e.p, e.n);
    s->big = m;
    s->len = 0;
  }
  else {
    s->big = NULL;
    s->len = (uint32_t)e.n;
    memcpy(s->data, e.p, e.n);
  }
  lua_settop(L, top);
  walkdata(s->big != NULL ? s->big->data : s->data, cr_shared_retain);
}

/* Drop what slot 's' holds (its handles, its message); it is then empty. */
void cr_codec_free_slot(cr_msgslot *s) {
  if (s->big != NULL) cr_msg_free(s->big);
  else if (s->len > 0) walkdata(s->data, cr_shared_release);
  s->big = NULL;
  s->len = 0;
}

/* {=================================================================
** Decoding
** ================================================================== */

typedef struct dec {
  lua_State *L;
  const char *p, *end;
  int flags;
  int seen;                   /* stack slot of id+1 -> object, or 0 */
  int first;                  /* stack slot of the first object */
  uint32_t nrefs;             /* as the header says */
  uint32_t nseen;             /* tables and functions decoded so far */
  size_t budget;              /* slots tables may still be presized with */
} dec;

static void decode_value(dec *d, int level);

static void corrupt(dec *d, const char *why) {
  luaL_error(d->L, "corrupt message: %s", why);
}

static size_t left(dec *d) {
  return (size_t)(d->end - d->p);
}

static const char *need(dec *d, size_t k) {
  const char *p = d->p;
  if (left(d) < k) corrupt(d, "truncated");
  d->p += k;
  return p;
}

static uint32_t getu32(dec *d) {
  uint32_t v;
  memcpy(&v, need(d, sizeof v), sizeof v);
  return v;
}

static size_t getlen(dec *d) {
  uint64_t v;
  memcpy(&v, need(d, sizeof v), sizeof v);
  if (v > left(d)) corrupt(d, "bad length");
  return (size_t)v;
}

/* Give the table or function on top the next id. */
static void remember(dec *d) {
  if (d->nseen >= d->nrefs) corrupt(d, "bad reference count");
  if (d->seen == 0) {  /* the only one: a top-level value, on the stack */
    d->first = lua_gettop(d->L);
    d->nseen++;
    return;
  }
  lua_pushvalue(d->L, -1);
  lua_rawseti(d->L, d->seen, (lua_Integer)++d->nseen);
}

static void decode_number(dec *d, int tag) {
  if (tag == T_INT) {
    lua_Integer i;
    memcpy(&i, need(d, sizeof i), sizeof i);
    lua_pushinteger(d->L, i);
  }
  else {
    lua_Number x;
    memcpy(&x, need(d, sizeof x), sizeof x);
    lua_pushnumber(d->L, x);
  }
}

static void decode_string(dec *d) {
  size_t len = getlen(d);
  lua_pushlstring(d->L, need(d, len), len);
}

/* Loading sets the first upvalue (_ENV, if any) to this state's globals. */
static void decode_function(dec *d) {
  lua_State *L = d->L;
  size_t len;
  const char *code;
  if (!(d->flags & CR_CODEC_FUNCTIONS))
    corrupt(d, "functions are not allowed here");
  len = getlen(d);
  code = need(d, len);
  if (luaL_loadbufferx(L, code, len, "=(corun)", "b") != LUA_OK)
    luaL_error(L, "corrupt message: %s", lua_tostring(L, -1));
  remember(d);
}

static void decode_shared(dec *d) {
  cr_shared *s;
  if (!(d->flags & TRUSTED))
    corrupt(d, "shared handles are not allowed here");
  memcpy(&s, need(d, sizeof s), sizeof s);
  cr_shared_retain(s);
  cr_shared_push(d->L, s);
}

static void decode_ref(dec *d) {
  uint32_t id = getu32(d);
  if (id >= d->nseen) corrupt(d, "bad reference");
  if (d->seen == 0) lua_pushvalue(d->L, d->first);
  else lua_rawgeti(d->L, d->seen, (lua_Integer)id + 1);
}

/* A key: any value but nil and NaN. */
static void decode_key(dec *d, int level) {
  lua_State *L = d->L;
  lua_Number x;
  decode_value(d, level);
  if (lua_isnil(L, -1)) corrupt(d, "nil key");
  x = lua_tonumber(L, -1);
  if (lua_type(L, -1) == LUA_TNUMBER && x != x) corrupt(d, "NaN key");
}

/* How many of 'n' claimed slots (each 'w' budget units) to allocate. */
static uint32_t presize(dec *d, uint32_t n, size_t w) {
  size_t k = d->budget / w;
  if (k < PRESIZE) k = PRESIZE;
  if (n < k) k = n;
  d->budget -= k * w < d->budget ? k * w : d->budget;
  return (uint32_t)k;
}

static void decode_table(dec *d, int level) {
  lua_State *L = d->L;
  uint32_t narr, nhash, i;
  if (level > MAXDEPTH)
    corrupt(d, "table nested deeper than " MAXDEPTH_S " levels");
  narr = getu32(d);
  nhash = getu32(d);
  if (narr > left(d) || nhash > left(d) / 2 || narr > INT_MAX)
    corrupt(d, "bad table size");
  if (!lua_checkstack(L, 4)) corrupt(d, "stack overflow");
  /* The sizes are only claims until the elements are read (a Lua slot
  ** is 16-32 bytes, an element 1 or more): the tables of a message are
  ** presized with at most len/16 slots in all (a hash pair counts 2),
  ** beyond PRESIZE each, and grow as their elements arrive. So lying
  ** sizes cost no more memory than the message itself. */
  lua_createtable(L, (int)presize(d, narr, 1), (int)presize(d, nhash, 2));
  remember(d);
  for (i = 1; i <= narr; i++) {
    decode_value(d, level + 1);
    lua_rawseti(L, -2, i);
  }
  for (i = 0; i < nhash; i++) {
    decode_key(d, level + 1);
    decode_value(d, level + 1);
    lua_rawset(L, -3);
  }
}

static void decode_value(dec *d, int level) {
  lua_State *L = d->L;
  int tag = (unsigned char)*need(d, 1);
  switch (tag) {
    case T_NIL: lua_pushnil(L); break;
    case T_FALSE: lua_pushboolean(L, 0); break;
    case T_TRUE: lua_pushboolean(L, 1); break;
    case T_INT: case T_FLT: decode_number(d, tag); break;
    case T_STR: decode_string(d); break;
    case T_FUNC: decode_function(d); break;
    case T_TABLE: decode_table(d, level); break;
    case T_REF: decode_ref(d); break;
    case T_SHARED: decode_shared(d); break;
    default: corrupt(d, "bad tag"); break;
  }
}

static int decode(lua_State *L, const char *data, size_t len, int flags) {
  dec d;
  const char *h;
  uint32_t n, i;
  if (data == NULL) data = "";  /* (NULL + 0 is undefined) */
  d.L = L;
  d.p = data;
  d.end = data + len;
  d.flags = flags;
  d.seen = 0;
  d.first = 0;
  d.nseen = 0;
  d.budget = len / 16;
  h = need(&d, HEADER);
  memcpy(&n, h + 2, sizeof n);
  memcpy(&d.nrefs, h + 6, sizeof d.nrefs);
  if (h[0] != MAGIC || (h[1] & ~M_SHARED) != 0 || n > left(&d) ||
      d.nrefs > left(&d) / 9)
    corrupt(&d, "bad header");
  if (n > INT_MAX - 8 || !lua_checkstack(L, (int)n + 8))
    corrupt(&d, "too many values");
  if (d.nrefs > 1) {  /* one alone is found by its stack slot */
    lua_createtable(L, (int)(d.nrefs < PRESIZE ? d.nrefs : PRESIZE), 0);
    d.seen = lua_gettop(L);
  }
  for (i = 0; i < n; i++) decode_value(&d, 1);
  if (d.p != d.end) corrupt(&d, "trailing bytes");
  if (d.seen != 0) lua_remove(L, d.seen);
  return (int)n;
}

int cr_codec_decode(lua_State *L, const cr_msg *m, int flags) {
  return decode(L, m->data, m->len, flags | TRUSTED);
}

int cr_codec_decode_slot(lua_State *L, const cr_msgslot *s, int flags) {
  if (s->big != NULL) return cr_codec_decode(L, s->big, flags);
  return decode(L, s->data, s->len, flags | TRUSTED);
}

int cr_codec_decode_buffer(lua_State *L, const char *data, size_t len,
                           int flags) {
  return decode(L, data, len, flags & ~TRUSTED);
}

/* }================================================================= */

/* {=================================================================
** Lua helpers for the specs (core.codec_*; not exported by corun)
** ================================================================== */

static int decode_msg(lua_State *L) {
  const cr_msg *m = (const cr_msg *)lua_touserdata(L, 1);
  lua_pop(L, 1);
  return cr_codec_decode(L, m, CR_CODEC_FUNCTIONS);
}

static int push_msg(lua_State *L) {
  const cr_msg *m = (const cr_msg *)lua_touserdata(L, 1);
  lua_pushlstring(L, m->data, m->len);
  return 1;
}

/* Call f(m) protected, free 'm', then return f's results or raise. */
static int with_msg(lua_State *L, lua_CFunction f, cr_msg *m) {
  int status;
  lua_settop(L, 0);
  lua_pushcfunction(L, f);  /* neither push allocates */
  lua_pushlightuserdata(L, m);
  status = lua_pcall(L, 1, LUA_MULTRET, 0);
  cr_msg_free(m);
  if (status != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

/* codec_roundtrip(...): copies of the values, functions allowed. */
static int codec_roundtrip(lua_State *L) {
  cr_msg *m = cr_codec_encode(L, 1, lua_gettop(L), "args",
                              CR_CODEC_FUNCTIONS);
  return with_msg(L, decode_msg, m);
}

/* codec_encode(...): the message as a string, data only. */
static int codec_encode(lua_State *L) {
  cr_msg *m = cr_codec_encode(L, 1, lua_gettop(L), "args", 0);
  return with_msg(L, push_msg, m);
}

/* codec_dump(...): the message as a string, functions allowed, no handles
** (the process pool's frames between corun processes). */
static int codec_dump(lua_State *L) {
  cr_msg *m = cr_codec_encode(L, 1, lua_gettop(L), "args",
                              CR_CODEC_FUNCTIONS | CR_CODEC_LOCAL);
  return with_msg(L, push_msg, m);
}

/* codec_load(s): the values of a codec_dump string. Like load() of a
** binary chunk, it trusts its bytes: only for frames corun processes send
** each other, never for bytes from elsewhere. */
static int codec_load(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return cr_codec_decode_buffer(L, s, len, CR_CODEC_FUNCTIONS);
}

/* codec_decode(s): the values of a message string, data only. */
static int codec_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return cr_codec_decode_buffer(L, s, len, 0);
}

void cr_codec_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"codec_roundtrip", codec_roundtrip},
    {"codec_encode", codec_encode},
    {"codec_decode", codec_decode},
    {"codec_dump", codec_dump},
    {"codec_load", codec_load},
    {NULL, NULL}
  };
  luaL_setfuncs(L, funcs, 0);  /* [loop, module]; they need no loop */
}

/* }================================================================= */
