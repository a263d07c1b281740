/*
** http_server.c
** The request parser of corun.http's server: a binding of http-parser
** (Debian's libhttp-parser) that does no I/O.
**
** lua/corun/http_server.lua reads a connection in the units this parser
** asks for (a line while in the head or between chunks, else exactly the
** bytes of the body or chunk still due) and feeds them in; feeding never
** crosses the end of a message, so pipelined requests are parsed one at a
** time. Limits are checked while feeding: the head's size (431), the
** body's size (413, before reading it when Content-Length says so);
** anything http-parser rejects is a 400.
*/

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "corun.h"

#define CR_HPARSER_MT "corun.http_parser"
#define MAX_NEED (64 * 1024)

typedef struct hbuf {
  char *p;                    /* owned */
  size_t len, cap;
} hbuf;

typedef struct cr_hparser {
  http_parser p;
  hbuf url, fields, body;     /* owned; fields: name\0value\0 pairs */
  size_t nfields;             /* pairs in 'fields' */
  size_t head_bytes, max_head, max_body;
  unsigned long long left;    /* identity body or chunk bytes still due */
  int in_value;               /* the last header callback was a value */
  int chunked;
  int head_done, msg_done;    /* set by the callbacks of this feed */
  int status;                 /* a limit's status (431, 413), or 0 */
  int nomem;
} cr_hparser;

static int hadd(cr_hparser *h, hbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    char *np;
    while (cap < b->len + n + 1) cap *= 2;
    if ((np = (char *)realloc(b->p, cap)) == NULL) {
      h->nomem = 1;
      return -1;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

/* {=================================================================
** http-parser callbacks (non-zero aborts the parse)
** ================================================================== */

static cr_hparser *hp(http_parser *p) {
  return cr_container_of(p, cr_hparser, p);
}

static int headbytes(cr_hparser *h, size_t n) {
  h->head_bytes += n;
  if (h->head_bytes > h->max_head) {
    h->status = 431;
    return -1;
  }
  return 0;
}

static int on_begin(http_parser *p) {
  cr_hparser *h = hp(p);
  h->url.len = h->fields.len = h->body.len = 0;
  h->nfields = h->head_bytes = 0;
  h->in_value = h->chunked = 0;
  h->left = 0;
  return 0;
}

static int on_url(http_parser *p, const char *s, size_t n) {
  cr_hparser *h = hp(p);
  if (headbytes(h, n) != 0) return -1;
  return hadd(h, &h->url, s, n);
}

static int on_field(http_parser *p, const char *s, size_t n) {
  cr_hparser *h = hp(p);
  if (headbytes(h, n) != 0) return -1;
  if (h->in_value || h->nfields == 0) {  /* a new pair */
    if (h->nfields > 0 && hadd(h, &h->fields, "", 1) != 0) return -1;
    h->nfields++;
    h->in_value = 0;
  }
  return hadd(h, &h->fields, s, n);
}

static int on_value(http_parser *p, const char *s, size_t n) {
  cr_hparser *h = hp(p);
  if (headbytes(h, n) != 0) return -1;
  if (!h->in_value) {
    if (hadd(h, &h->fields, "", 1) != 0) return -1;
    h->in_value = 1;
  }
  return hadd(h, &h->fields, s, n);
}

static int on_headers(http_parser *p) {
  cr_hparser *h = hp(p);
  if (h->nfields > 0 && !h->in_value && hadd(h, &h->fields, "", 1) != 0)
    return -1;  /* a last name without a value: an empty value */
  if (h->nfields > 0 && hadd(h, &h->fields, "", 1) != 0) return -1;
  h->head_done = 1;
  h->chunked = (p->flags & F_CHUNKED) != 0;
  if (!h->chunked && p->content_length != ULLONG_MAX) {
    if (h->max_body > 0 && p->content_length > h->max_body) {
      h->status = 413;
      return -1;
    }
    h->left = p->content_length;
  }
  return 0;
}

static int on_chunk(http_parser *p) {
  cr_hparser *h = hp(p);
  h->left = p->content_length;
  return 0;
}

static int on_body(http_parser *p, const char *s, size_t n) {
  cr_hparser *h = hp(p);
  h->left = n < h->left ? h->left - n : 0;
  if (h->max_body > 0 && h->body.len + n > h->max_body) {
    h->status = 413;
    return -1;
  }
  return hadd(h, &h->body, s, n);
}

static int on_complete(http_parser *p) {
  cr_hparser *h = hp(p);
  h->msg_done = 1;
  h->left = 0;
  http_parser_pause(p, 1);  /* what follows belongs to the next request */
  return 0;
}

static const http_parser_settings settings = {
  .on_message_begin = on_begin, .on_url = on_url,
  .on_header_field = on_field, .on_header_value = on_value,
  .on_headers_complete = on_headers, .on_body = on_body,
  .on_message_complete = on_complete, .on_chunk_header = on_chunk,
};

/* }================================================================= */


/* {=================================================================
** The Lua side
** ================================================================== */

static cr_hparser *checkparser(lua_State *L) {
  return (cr_hparser *)luaL_checkudata(L, 1, CR_HPARSER_MT);
}

static int parser_gc(lua_State *L) {
  cr_hparser *h = checkparser(L);
  free(h->url.p);
  free(h->fields.p);
  free(h->body.p);
  h->url.p = h->fields.p = h->body.p = NULL;
  h->url.cap = h->fields.cap = h->body.cap = 0;
  return 0;
}

/* What to read next: a byte count, or 0 for a line. */
static lua_Integer need(cr_hparser *h) {
  if (!h->head_done || h->msg_done || h->left == 0) return 0;
  return h->left > MAX_NEED ? MAX_NEED : (lua_Integer)h->left;
}

/* p:feed(data) -> need, head_done, msg_done | nil, message, status */
static int parser_feed(lua_State *L) {
  cr_hparser *h = checkparser(L);
  size_t len, n;
  const char *s = luaL_checklstring(L, 2, &len);
  int head = h->head_done;
  if (h->msg_done) {  /* the previous message was taken: go on */
    h->msg_done = h->head_done = 0;
    http_parser_pause(&h->p, 0);
    head = 0;
  }
  n = http_parser_execute(&h->p, &settings, s, len);
  if (h->nomem) return luaL_error(L, "http: not enough memory");
  if (HTTP_PARSER_ERRNO(&h->p) != HPE_OK &&
      !(HTTP_PARSER_ERRNO(&h->p) == HPE_PAUSED && n == len)) {
    enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
    lua_pushnil(L);
    if (h->status == 431) lua_pushliteral(L, "request header too large");
    else if (h->status == 413) lua_pushliteral(L, "request body too large");
    else if (e == HPE_PAUSED) lua_pushliteral(L, "data after the request");
    else lua_pushfstring(L, "%s: %s", http_errno_name(e),
                         http_errno_description(e));
    lua_pushinteger(L, h->status ? h->status : 400);
    return 3;
  }
  lua_pushinteger(L, need(h));
  lua_pushboolean(L, h->head_done && !head);
  lua_pushboolean(L, h->msg_done);
  return 3;
}

/* p:head() -> method, target, {{name, value}, ...}, keep_alive, version */
static int parser_head(lua_State *L) {
  cr_hparser *h = checkparser(L);
  const char *f = h->fields.p, *v;
  size_t i;
  lua_pushstring(L, http_method_str((enum http_method)h->p.method));
  lua_pushlstring(L, h->url.p != NULL ? h->url.p : "", h->url.len);
  lua_createtable(L, (int)h->nfields, 0);
  for (i = 0; i < h->nfields; i++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, f);
    lua_rawseti(L, -2, 1);
    v = f + strlen(f) + 1;
    lua_pushstring(L, v);
    lua_rawseti(L, -2, 2);
    f = v + strlen(v) + 1;
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushboolean(L, http_should_keep_alive(&h->p));
  lua_pushfstring(L, "%d.%d", (int)h->p.http_major, (int)h->p.http_minor);
  lua_pushboolean(L, h->chunked);
  return 6;
}

/* p:body() -> the body bytes parsed since the last call */
static int parser_body(lua_State *L) {
  cr_hparser *h = checkparser(L);
  lua_pushlstring(L, h->body.p != NULL ? h->body.p : "", h->body.len);
  h->body.len = 0;
  return 1;
}

/* core.http_parser(max_head, max_body) -> a request parser */
static int http_parser_new(lua_State *L) {
  lua_Integer mh = luaL_checkinteger(L, 1), mb = luaL_checkinteger(L, 2);
  cr_hparser *h = (cr_hparser *)lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  luaL_setmetatable(L, CR_HPARSER_MT);
  http_parser_init(&h->p, HTTP_REQUEST);
  h->max_head = mh > 0 ? (size_t)mh : (size_t)-1;
  h->max_body = mb > 0 ? (size_t)mb : 0;
  return 1;
}

/* }================================================================= */

void cr_http_server_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"http_parser", http_parser_new}, {NULL, NULL}
  };
  static const luaL_Reg meta[] = {{"__gc", parser_gc}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
    {"feed", parser_feed}, {"head", parser_head}, {"body", parser_body},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  cr_newclass(L, CR_HPARSER_MT, meta, methods, loopidx);
}
