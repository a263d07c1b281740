/*
** http_server.c
** The request parser of corun.http's server, a binding of http-parser
** (Debian's libhttp-parser) that does no I/O, and the writer of response
** heads.
**
** lua/corun/http_server.lua feeds the parser what a connection has
** received: p:feed(data, stream) parses 'data' and then the stream's
** buffer in place (cr_stream_peek), consuming only what belongs to the
** current message, so pipelined requests stay in the stream and are
** parsed one at a time; input given as strings (a TLS stream's
** plaintext) that goes past a message's end is kept in the parser for the
** next one. Limits are checked while feeding: the head's size (431), the
** body's size (413, before reading it when Content-Length says so);
** anything http-parser rejects is a 400. p:request() makes the request
** table, p:response() a response's status line and headers.
*/

#define _POSIX_C_SOURCE 200809L   /* gmtime_r, strncasecmp */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <http_parser.h>

#include "corun.h"

#define CR_HPARSER_MT "corun.http_parser"
#define CR_HPARSER_MAGIC 0x7a5c0040u
#define BIG_BUF (64 * 1024)   /* a buffer larger is freed after use */

typedef struct hbuf {
  char *p;                    /* owned */
  size_t len, cap;
} hbuf;

typedef struct cr_hparser {
  http_parser p;
  hbuf url, fields, body;     /* owned; fields: name\0value\0 pairs */
  hbuf pending;               /* owned: fed bytes after a message's end */
  hbuf out;                   /* owned: p:response()'s scratch */
  size_t nfields;             /* pairs in 'fields' */
  size_t head_bytes, max_head, max_body;
  int in_value;               /* the last header callback was a value */
  int chunked;
  int head_done, msg_done;    /* the current message's head, all of it */
  int status;                 /* a limit's status (431, 413), or 0 */
  int nomem;
  time_t date_sec;            /* 'date' is the Date header of that second */
  char date[40];
  unsigned magic;
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
  }
  return 0;
}

static int on_body(http_parser *p, const char *s, size_t n) {
  cr_hparser *h = hp(p);
  if (h->max_body > 0 && h->body.len + n > h->max_body) {
    h->status = 413;
    return -1;
  }
  return hadd(h, &h->body, s, n);
}

static int on_complete(http_parser *p) {
  cr_hparser *h = hp(p);
  h->msg_done = 1;
  http_parser_pause(p, 1);  /* what follows belongs to the next request */
  return 0;
}

static const http_parser_settings settings = {
  .on_message_begin = on_begin, .on_url = on_url,
  .on_header_field = on_field, .on_header_value = on_value,
  .on_headers_complete = on_headers, .on_body = on_body,
  .on_message_complete = on_complete,
};

/* }================================================================= */



/* {=================================================================
** Feeding
** ================================================================== */

static cr_hparser *checkparser(lua_State *L) {
  cr_hparser *h = cr_testobj(L, 1, cr_hparser, CR_HPARSER_MAGIC);
  if (h == NULL) luaL_typeerror(L, 1, CR_HPARSER_MT);
  return h;
}

/* Free a buffer grown past what an idle connection should keep. */
static void shrink(hbuf *b) {
  if (b->cap > BIG_BUF) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
  }
}

/* Parse s[0..len) up to the end of the current message: the bytes taken
** (all of them unless the message ended), or -1 on an error. */
static long exec(cr_hparser *h, const char *s, size_t len) {
  size_t n;
  enum http_errno e;
  if (len == 0 || h->msg_done) return 0;
  n = http_parser_execute(&h->p, &settings, s, len);
  e = HTTP_PARSER_ERRNO(&h->p);
  if (h->nomem) return -1;
  if (e == HPE_OK && n == len) return (long)n;
  if (e == HPE_PAUSED && h->msg_done) return (long)n;
  if (e == HPE_OK) h->p.http_errno = HPE_INVALID_CONSTANT;  /* stopped early */
  return -1;
}

/* Parse string s[0..len), keeping what follows the message's end. */
static long exec_keep(cr_hparser *h, const char *s, size_t len) {
  long r = exec(h, s, len);
  if (r >= 0 && (size_t)r < len && hadd(h, &h->pending, s + r, len - r) != 0)
    return -1;
  return r;
}

static int feed_error(lua_State *L, cr_hparser *h) {
  enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
  if (h->nomem) return luaL_error(L, "http: not enough memory");
  lua_pushnil(L);
  if (h->status == 431) lua_pushliteral(L, "request header too large");
  else if (h->status == 413) lua_pushliteral(L, "request body too large");
  else lua_pushfstring(L, "%s: %s", http_errno_name(e),
                       http_errno_description(e));
  lua_pushinteger(L, h->status ? h->status : 400);
  return 3;
}

/* p:feed([data], [src]) -> phase, rest | nil, message, status
** Parses what the parser kept from earlier feeds, then 'data', then 'src'
** (a string, or a stream: its buffered bytes, in place), up to the end of
** the current message. phase: 0 (the head is incomplete), 1 (the head is
** complete, the body is not), 2 (the message is complete; the next feed
** starts the next one). rest: unparsed input is left (kept here, or in
** the stream), so the next message may be there already. */
static int parser_feed(lua_State *L) {
  cr_hparser *h = checkparser(L);
  size_t len = 0;
  const char *s;
  long r;
  int rest;
  if (h->msg_done) {  /* the previous message was taken: go on */
    h->msg_done = h->head_done = 0;
    http_parser_pause(&h->p, 0);
  }
  if (h->pending.len > 0) {
    if ((r = exec(h, h->pending.p, h->pending.len)) < 0)
      return feed_error(L, h);
    memmove(h->pending.p, h->pending.p + r, h->pending.len - (size_t)r);
    h->pending.len -= (size_t)r;
    if (h->pending.len == 0) shrink(&h->pending);
  }
  if ((s = lua_tolstring(L, 2, &len)) != NULL && len > 0) {
    if (h->msg_done) {
      if (hadd(h, &h->pending, s, len) != 0) return feed_error(L, h);
    }
    else if (exec_keep(h, s, len) < 0) return feed_error(L, h);
  }
  if (lua_type(L, 3) == LUA_TSTRING) {
    s = lua_tolstring(L, 3, &len);
    if (h->msg_done) {
      if (len > 0 && hadd(h, &h->pending, s, len) != 0)
        return feed_error(L, h);
    }
    else if (exec_keep(h, s, len) < 0) return feed_error(L, h);
    rest = h->pending.len > 0;
  }
  else {
    s = cr_stream_peek(L, 3, &len);
    if (len > 0 && !h->msg_done) {
      if ((r = exec(h, s, len)) < 0) return feed_error(L, h);
      cr_stream_skip(L, 3, (size_t)r);
      len -= (size_t)r;
    }
    rest = h->pending.len > 0 || len > 0;
  }
  lua_pushinteger(L, h->msg_done ? 2 : h->head_done ? 1 : 0);
  lua_pushboolean(L, rest);
  return 2;
}

/* p:body() -> the body bytes parsed since the last call */
static int parser_body(lua_State *L) {
  cr_hparser *h = checkparser(L);
  lua_pushlstring(L, h->body.p != NULL ? h->body.p : "", h->body.len);
  h->body.len = 0;
  shrink(&h->body);
  return 1;
}

/* }================================================================= */


/* {=================================================================
** The request
** ================================================================== */

/* p:request() -> method, target, path, query, version, headers, fields,
** keep_alive. query: nil when empty. headers: names lowercased, repeats
** joined with ", ", with the headers metatable given to core.http_parser.
** fields: the name\0value\0 pairs as they came (for req.header_list).
** (The Lua side makes the request table: its constructor is cheaper than
** setting fields from C.) */
static int parser_request(lua_State *L) {
  cr_hparser *h = checkparser(L);
  const char *u = h->url.p != NULL ? h->url.p : "", *f = h->fields.p;
  size_t ul = h->url.len, q, e, i;
  lua_pushstring(L, http_method_str((enum http_method)h->p.method));
  for (q = 0; q < ul && u[q] != '?' && u[q] != '#'; q++) continue;
  lua_pushlstring(L, u, ul);
  if (q == ul) lua_pushvalue(L, -1);
  else lua_pushlstring(L, u, q);
  e = q + 1;
  if (q < ul && u[q] == '?')
    while (e < ul && u[e] != '#') e++;
  if (e > q + 1) lua_pushlstring(L, u + q + 1, e - q - 1);
  else lua_pushnil(L);
  if (h->p.http_major == 1 && h->p.http_minor == 1)
    lua_pushliteral(L, "1.1");
  else
    lua_pushfstring(L, "%d.%d", (int)h->p.http_major, (int)h->p.http_minor);
  lua_createtable(L, 0, (int)h->nfields);
  lua_getiuservalue(L, 1, 1);
  lua_setmetatable(L, -2);
  for (i = 0; i < h->nfields; i++) {
    size_t nl = strlen(f), k;
    const char *v = f + nl + 1;
    size_t vl = strlen(v);
    if (h->out.cap < nl + 1) {
      h->out.len = 0;
      if (hadd(h, &h->out, f, nl + 1) != 0)
        return luaL_error(L, "http: not enough memory");
    }
    for (k = 0; k < nl; k++) {
      char c = f[k];
      h->out.p[k] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    lua_pushlstring(L, h->out.p, nl);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushlstring(L, v, vl);
    }
    else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, vl);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
    f = v + vl + 1;
  }
  lua_pushlstring(L, h->fields.p, h->nfields > 0 ? h->fields.len : 0);
  lua_pushboolean(L, http_should_keep_alive(&h->p));
  return 8;
}

/* core.http_header_list(fields) -> {{name, value}, ...} from a request's
** _fields (name\0value\0 pairs) */
static int http_header_list(lua_State *L) {
  size_t len, i = 0;
  const char *f = luaL_checklstring(L, 1, &len), *end = f + len;
  lua_newtable(L);
  while (f < end) {
    size_t nl = strlen(f);
    const char *v = f + nl + 1;
    size_t vl = strlen(v);
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, f, nl);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, v, vl);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (lua_Integer)++i);
    f = v + vl + 1;
  }
  return 1;
}

/* }================================================================= */


/* {=================================================================
** Responses
** ================================================================== */

static const char *reason(lua_Integer code) {
  switch (code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

#define SEEN_DATE 1
#define SEEN_LENGTH 2

static int addstr(cr_hparser *h, const char *s) {
  return hadd(h, &h->out, s, strlen(s));
}

/* Add the decimal digits of 'n'. */
static int addnum(cr_hparser *h, size_t n) {
  char d[24], *p = d + sizeof d;
  do {
    *--p = (char)('0' + n % 10);
    n /= 10;
  } while (n > 0);
  return hadd(h, &h->out, p, (size_t)(d + sizeof d - p));
}

#define SAME(k, kl, lit) \
  ((kl) == sizeof(lit) - 1 && strncasecmp((k), (lit), (kl)) == 0)

/* Add the header at stack indices ki, vi ("Name: value\r\n"): 0, or -1
** (no memory). A name or value that would break the head raises. */
static int addheader(lua_State *L, cr_hparser *h, int ki, int vi, int *seen) {
  size_t kl, vl, i;
  const char *k, *v;
  int pushed = 0;
  ki = lua_absindex(L, ki);
  vi = lua_absindex(L, vi);
  if (lua_type(L, ki) == LUA_TSTRING) k = lua_tolstring(L, ki, &kl);
  else {  /* tostring (leaves the key of a traversal as it is) */
    k = luaL_tolstring(L, ki, &kl);
    pushed++;
  }
  if (lua_type(L, vi) == LUA_TSTRING) v = lua_tolstring(L, vi, &vl);
  else {
    v = luaL_tolstring(L, vi, &vl);
    pushed++;
  }
  for (i = 0; i < kl; i++)
    if (k[i] == '\r' || k[i] == '\n' || k[i] == ':' || k[i] == '\0') break;
  if (i < kl || memchr(v, '\r', vl) != NULL || memchr(v, '\n', vl) != NULL)
    return luaL_error(L, "http: header with a line break or a bad name: %s", k);
  if (SAME(k, kl, "date")) *seen |= SEEN_DATE;
  else if (SAME(k, kl, "content-length")) *seen |= SEEN_LENGTH;
  if (hadd(h, &h->out, k, kl) != 0 || hadd(h, &h->out, ": ", 2) != 0 ||
      hadd(h, &h->out, v, vl) != 0 || hadd(h, &h->out, "\r\n", 2) != 0)
    return -1;
  lua_pop(L, pushed);
  return 0;
}

/* Add the headers of the table at 't' (nil: none): a list of {name,
** value} pairs, or name -> value or list of values. */
static int addheaders(lua_State *L, cr_hparser *h, int t, int *seen) {
  int r = 0;
  lua_Integer i, n;
  if (lua_type(L, t) != LUA_TTABLE) return 0;  /* nil: none */
  if ((n = (lua_Integer)lua_rawlen(L, t)) > 0) {
    for (i = 1; i <= n && r == 0; i++) {
      lua_rawgeti(L, t, i);
      if (lua_type(L, -1) != LUA_TTABLE)
        return luaL_error(L, "http: a header list holds {name, value} pairs");
      lua_rawgeti(L, -1, 1);
      lua_rawgeti(L, -2, 2);
      if ((r = addheader(L, h, -2, -1, seen)) == 0) lua_pop(L, 3);
    }
    return r;
  }
  lua_pushnil(L);
  while (r == 0 && lua_next(L, t) != 0) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      n = (lua_Integer)lua_rawlen(L, -1);
      for (i = 1; i <= n && r == 0; i++) {
        lua_rawgeti(L, -1, i);
        if ((r = addheader(L, h, -3, -1, seen)) == 0) lua_pop(L, 1);
      }
    }
    else
      r = addheader(L, h, -2, -1, seen);
    if (r == 0) lua_pop(L, 1);
  }
  return r;
}

/* p:response(code, body, keep, head_only, [headers], [headers2])
** -> head, send_body
** The status line and headers of a response, ending with the blank line:
** the headers given (two tables: res:header's list, then what the handler
** returned), then Date, "Connection: close" (when not keep) and, unless
** given, Content-Length (#body). send_body: whether the body follows
** (not for HEAD, 1xx, 204, 304). body false: the head of a streamed
** response, with "Transfer-Encoding: chunked" unless a Content-Length was
** given; then the second result says whether it is chunked. A header
** with a line break or a bad name raises. */
static int parser_response(lua_State *L) {
  cr_hparser *h = checkparser(L);
  lua_Integer code = luaL_checkinteger(L, 2);
  int streamed = lua_type(L, 3) == LUA_TBOOLEAN && !lua_toboolean(L, 3);
  int keep = lua_toboolean(L, 4), head_only = lua_toboolean(L, 5);
  int nobody = code == 204 || code == 304 || (code >= 100 && code < 200);
  int seen = 0, r, send;
  size_t blen = 0;
  if (!streamed && !lua_isnil(L, 3)) luaL_checklstring(L, 3, &blen);
  lua_settop(L, 7);
  h->out.len = 0;
  if (addstr(h, code < 0 ? "HTTP/1.1 -" : "HTTP/1.1 ") != 0 ||
      addnum(h, code < 0 ? (size_t)0 - (size_t)code : (size_t)code) != 0 ||
      addstr(h, " ") != 0 ||
      addstr(h, reason(code)) != 0 || addstr(h, "\r\n") != 0)
    goto nomem;
  if ((r = addheaders(L, h, 6, &seen)) == 0) r = addheaders(L, h, 7, &seen);
  if (r != 0) goto nomem;
  if (!(seen & SEEN_DATE)) {
    time_t now = time(NULL);
    if (now != h->date_sec || h->date[0] == '\0') {
      struct tm tm;
      gmtime_r(&now, &tm);
      strftime(h->date, sizeof h->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
      h->date_sec = now;
    }
    if (addstr(h, "Date: ") != 0 || addstr(h, h->date) != 0 ||
        addstr(h, "\r\n") != 0)
      goto nomem;
  }
  if (!keep && addstr(h, "Connection: close\r\n") != 0) goto nomem;
  if (streamed) {
    send = !nobody && !(seen & SEEN_LENGTH);
    if (send && addstr(h, "Transfer-Encoding: chunked\r\n") != 0) goto nomem;
  }
  else {
    send = !nobody && !head_only;
    if (!nobody && !(seen & SEEN_LENGTH) &&
        (addstr(h, "Content-Length: ") != 0 || addnum(h, blen) != 0 ||
         addstr(h, "\r\n") != 0))
      goto nomem;
  }
  if (addstr(h, "\r\n") != 0) goto nomem;
  lua_pushlstring(L, h->out.p, h->out.len);
  shrink(&h->out);
  lua_pushboolean(L, send);
  return 2;
nomem:
  return luaL_error(L, "http: not enough memory");
}

/* }================================================================= */


/* {=================================================================
** The parser object
** ================================================================== */

static int parser_gc(lua_State *L) {
  cr_hparser *h = checkparser(L);
  hbuf *b[] = {&h->url, &h->fields, &h->body, &h->pending, &h->out};
  size_t i;
  for (i = 0; i < sizeof b / sizeof b[0]; i++) {
    free(b[i]->p);
    b[i]->p = NULL;
    b[i]->len = b[i]->cap = 0;
  }
  return 0;
}

/* core.http_parser(max_head, max_body, headers_mt, request_mt) */
static int http_parser_new(lua_State *L) {
  lua_Integer mh = luaL_checkinteger(L, 1), mb = luaL_checkinteger(L, 2);
  cr_hparser *h;
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  h = (cr_hparser *)lua_newuserdatauv(L, sizeof *h, 2);
  memset(h, 0, sizeof *h);
  h->magic = CR_HPARSER_MAGIC;
  luaL_setmetatable(L, CR_HPARSER_MT);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 4);
  lua_setiuservalue(L, -2, 2);
  http_parser_init(&h->p, HTTP_REQUEST);
  h->max_head = mh > 0 ? (size_t)mh : (size_t)-1;
  h->max_body = mb > 0 ? (size_t)mb : 0;
  return 1;
}

/* }================================================================= */

void cr_http_server_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"http_parser", http_parser_new}, {"http_header_list", http_header_list},
    {NULL, NULL}
  };
  static const luaL_Reg meta[] = {{"__gc", parser_gc}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
    {"feed", parser_feed}, {"request", parser_request},
    {"body", parser_body}, {"response", parser_response}, {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  cr_newclass(L, CR_HPARSER_MT, meta, methods, loopidx);
}
