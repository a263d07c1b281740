/*
** http_client.c
** The HTTP client of corun.http: libcurl's multi-socket interface driven
** by the loop.
**
** Each loop has one multi handle (created on first use, kept in a
** userdata under a registry key), so connections are cached and reused
** across tasks (keep-alive) and HTTP/2 is multiplexed where the server
** offers it. libcurl tells which sockets to watch (a uv_poll per socket)
** and when to call it back (one uv timer), as its own libuv example does.
** A request (creq) is malloc'd; its task parks until the transfer is done
** (curl_multi_info_read), then builds the result and frees it. A task that
** gives up (timeout, cancel) removes its easy handle at once: the transfer
** is aborted and freed in its continuation, never inside a curl callback.
** Idle cached connections and the timer do not keep the loop alive: they
** are referenced only while a transfer is in progress.
** Failures: nil, "ECURL_<NAME>: message", "ECURL_<NAME>".
*/

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "corun.h"

#define CR_CURL_MT "corun.http_multi"
#define CR_XFER_MT "corun.http_transfer"
#define STREAM_HIGH (64 * 1024)   /* stream: pause above this many bytes */

typedef struct cr_curl {
  cr_loop *loop;
  CURLM *multi;               /* owned: curl_multi_cleanup in __gc */
  uv_timer_t *timer;          /* owned: freed in its close callback */
  cr_list socks;              /* csock: the sockets watched */
  cr_list reqs;               /* creq: transfers added to 'multi' */
  int active;                 /* transfers in progress */
} cr_curl;

typedef struct csock {
  uv_poll_t poll;             /* freed with the csock in its close cb */
  cr_list node;               /* in cr_curl.socks */
  curl_socket_t fd;
  cr_curl *cm;
} csock;

typedef struct cbuf {
  char *p;                    /* owned */
  size_t len, cap;
} cbuf;

typedef struct creq {
  cr_list node;               /* in cr_curl.reqs while added */
  cr_list waiters;            /* the requesting task */
  cr_curl *cm;
  CURL *easy;                 /* owned */
  struct curl_slist *hdrs;    /* owned: request headers */
  struct curl_slist *resolve; /* owned: "host:port:address" overrides */
  cbuf head, body;            /* owned: the last response's headers, body */
  size_t max_body;            /* 0: no limit */
  int done;                   /* the transfer finished with 'result' */
  int stream;                 /* the body is read through a transfer box */
  int ready;                  /* stream: the head is in (body under way) */
  int paused;                 /* stream: on_body paused the transfer */
  int boxed;                  /* owned by a box (corun.http_transfer) */
  int upload;                 /* the request body comes through xfer:send */
  int inreq;                  /* the requesting task is still in request */
  int up_eof, up_paused;      /* upload: all sent; on_upload paused */
  cbuf up;                    /* owned: upload bytes at up.p[upos..len) */
  size_t upos;
  cr_list upwaiters;          /* the task feeding the upload */
  int toolarge;               /* the body exceeded max_body */
  CURLcode result;
  char errbuf[CURL_ERROR_SIZE];
} creq;

static const char curl_key = 0;  /* registry key of this state's cr_curl */

/* {=================================================================
** Errors
** ================================================================== */

#define CODE(n) [CURLE_##n] = #n
static const char *const codenames[CURL_LAST] = {
  CODE(UNSUPPORTED_PROTOCOL), CODE(FAILED_INIT), CODE(URL_MALFORMAT),
  CODE(NOT_BUILT_IN), CODE(COULDNT_RESOLVE_PROXY), CODE(COULDNT_RESOLVE_HOST),
  CODE(COULDNT_CONNECT), CODE(WEIRD_SERVER_REPLY), CODE(REMOTE_ACCESS_DENIED),
  CODE(HTTP2), CODE(PARTIAL_FILE), CODE(HTTP_RETURNED_ERROR),
  CODE(WRITE_ERROR), CODE(UPLOAD_FAILED), CODE(READ_ERROR),
  CODE(OUT_OF_MEMORY), CODE(OPERATION_TIMEDOUT), CODE(RANGE_ERROR),
  CODE(HTTP_POST_ERROR), CODE(SSL_CONNECT_ERROR), CODE(BAD_DOWNLOAD_RESUME),
  CODE(FUNCTION_NOT_FOUND), CODE(ABORTED_BY_CALLBACK),
  CODE(BAD_FUNCTION_ARGUMENT), CODE(INTERFACE_FAILED),
  CODE(TOO_MANY_REDIRECTS), CODE(UNKNOWN_OPTION), CODE(SETOPT_OPTION_SYNTAX),
  CODE(GOT_NOTHING), CODE(SSL_ENGINE_NOTFOUND), CODE(SSL_ENGINE_SETFAILED),
  CODE(SEND_ERROR), CODE(RECV_ERROR), CODE(SSL_CERTPROBLEM),
  CODE(SSL_CIPHER), CODE(PEER_FAILED_VERIFICATION), CODE(BAD_CONTENT_ENCODING),
  CODE(FILESIZE_EXCEEDED), CODE(USE_SSL_FAILED), CODE(SEND_FAIL_REWIND),
  CODE(SSL_ENGINE_INITFAILED), CODE(LOGIN_DENIED), CODE(SSL_CACERT_BADFILE),
  CODE(SSL_SHUTDOWN_FAILED), CODE(AGAIN), CODE(SSL_CRL_BADFILE),
  CODE(SSL_ISSUER_ERROR), CODE(CHUNK_FAILED), CODE(NO_CONNECTION_AVAILABLE),
  CODE(SSL_PINNEDPUBKEYNOTMATCH), CODE(SSL_INVALIDCERTSTATUS),
  CODE(HTTP2_STREAM), CODE(RECURSIVE_API_CALL), CODE(AUTH_ERROR),
  CODE(HTTP3), CODE(QUIC_CONNECT_ERROR), CODE(PROXY),
  CODE(SSL_CLIENTCERT), CODE(UNRECOVERABLE_POLL),
};
#undef CODE

/* Push nil, "ECURL_<NAME>: message", "ECURL_<NAME>"; returns 3. */
static int curlerror(lua_State *L, CURLcode c, const char *detail) {
  const char *name = (unsigned)c < CURL_LAST ? codenames[c] : NULL;
  lua_pushnil(L);
  if (name != NULL) lua_pushfstring(L, "ECURL_%s", name);
  else lua_pushfstring(L, "ECURL_%d", (int)c);
  lua_pushfstring(L, "%s: %s", lua_tostring(L, -1),
                  detail != NULL && *detail ? detail : curl_easy_strerror(c));
  lua_insert(L, -2);
  return 3;
}

/* }================================================================= */


/* {=================================================================
** The loop glue: sockets, the timer, completions
** ================================================================== */

/* Reference the timer and the sockets only while transfers run. */
static void keepalive(cr_curl *cm) {
  cr_list *n;
  void (*f)(uv_handle_t *) = cm->active > 0 ? uv_ref : uv_unref;
  f((uv_handle_t *)cm->timer);
  for (n = cm->socks.next; n != &cm->socks; n = n->next)
    f((uv_handle_t *)&cr_container_of(n, csock, node)->poll);
}

static void wakefeeder(creq *q, int outcome) {
  cr_wait_wakeall(&q->upwaiters, outcome);
}

static int wakeone(creq *q) {
  return cr_wait_wakeone(&q->waiters, CR_OK) != NULL;
}

/* Returns 1 when a task was woken. */
static int finish(creq *q, CURLcode result) {
  cr_curl *cm = q->cm;
  q->done = 1;
  q->result = result;
  curl_multi_remove_handle(cm->multi, q->easy);
  cr_list_remove(&q->node);
  cm->active--;
  wakefeeder(q, CR_CLOSED);
  return wakeone(q);
}

/* Hand finished transfers to their tasks; returns how many were woken. */
static int completions(cr_curl *cm) {
  CURLMsg *m;
  int left, woken = 0;
  while ((m = curl_multi_info_read(cm->multi, &left)) != NULL) {
    creq *q = NULL;
    if (m->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
    if (q != NULL) woken += finish(q, m->data.result);
  }
  keepalive(cm);
  return woken;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  csock *s = (csock *)h->data;
  cr_curl *cm = s->cm;
  int flags = 0, running;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(cm->multi, s->fd, flags, &running);
  completions(cm);
}

static void on_timer(uv_timer_t *t) {
  cr_curl *cm = (cr_curl *)t->data;
  int running;
  curl_multi_socket_action(cm->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  /* libuv runs timers before it polls: without this, uv_run(UV_RUN_ONCE)
  ** would go on to block for I/O while the woken tasks wait to run */
  if (completions(cm) > 0) uv_stop(&cm->loop->uv);
}

static int timerfunc(CURLM *multi, long ms, void *p) {
  cr_curl *cm = (cr_curl *)p;
  (void)multi;
  if (ms < 0) uv_timer_stop(cm->timer);
  else uv_timer_start(cm->timer, on_timer, (uint64_t)ms, 0);
  return 0;
}

static void on_sock_closed(uv_handle_t *h) {
  free(h->data);
}

static int sockfunc(CURL *easy, curl_socket_t fd, int what, void *p,
                    void *sockp) {
  cr_curl *cm = (cr_curl *)p;
  csock *s = (csock *)sockp;
  int events = 0;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (s != NULL) {
      curl_multi_assign(cm->multi, fd, NULL);
      cr_list_remove(&s->node);
      uv_poll_stop(&s->poll);
      uv_close((uv_handle_t *)&s->poll, on_sock_closed);
    }
    return 0;
  }
  if (s == NULL) {
    if ((s = (csock *)calloc(1, sizeof *s)) == NULL) return -1;
    if (uv_poll_init_socket(&cm->loop->uv, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    s->fd = fd;
    s->cm = cm;
    cr_list_push(&cm->socks, &s->node);
    if (cm->active == 0) uv_unref((uv_handle_t *)&s->poll);
    curl_multi_assign(cm->multi, fd, s);
  }
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

static void on_timer_closed(uv_handle_t *h) {
  free(h);
}

static void freereq(creq *q) {
  if (q->easy != NULL) curl_easy_cleanup(q->easy);
  curl_slist_free_all(q->hdrs);
  curl_slist_free_all(q->resolve);
  free(q->head.p);
  free(q->body.p);
  free(q->up.p);
  free(q);
}

static int multi_gc(lua_State *L) {
  cr_curl *cm = (cr_curl *)lua_touserdata(L, 1);
  if (cm->multi == NULL) return 0;
  while (!cr_list_empty(&cm->reqs)) {  /* tasks that never came back */
    creq *q = cr_container_of(cr_list_head(&cm->reqs), creq, node);
    curl_multi_remove_handle(cm->multi, q->easy);
    cr_list_remove(&q->node);
    if (q->boxed) {  /* its box frees it */
      q->done = 1;
      q->result = CURLE_ABORTED_BY_CALLBACK;
      q->cm = NULL;
    }
    else
      freereq(q);
  }
  curl_multi_cleanup(cm->multi);  /* closes cached connections: REMOVEs */
  cm->multi = NULL;
  while (!cr_list_empty(&cm->socks)) {
    csock *s = cr_container_of(cr_list_head(&cm->socks), csock, node);
    cr_list_remove(&s->node);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
  }
  uv_close((uv_handle_t *)cm->timer, on_timer_closed);
  return 0;
}

/* This state's multi handle, created on first use. */
static cr_curl *getmulti(lua_State *L) {
  cr_curl *cm;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &curl_key) == LUA_TUSERDATA) {
    cm = (cr_curl *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return cm;
  }
  lua_pop(L, 1);
  cm = (cr_curl *)lua_newuserdatauv(L, sizeof *cm, 0);
  memset(cm, 0, sizeof *cm);
  cr_list_init(&cm->socks);
  cr_list_init(&cm->reqs);
  cm->loop = cr_loop_get(L);
  cm->timer = (uv_timer_t *)malloc(sizeof *cm->timer);
  if (cm->timer == NULL || (cm->multi = curl_multi_init()) == NULL) {
    free(cm->timer);
    luaL_error(L, "http: cannot create a curl multi handle");
  }
  luaL_setmetatable(L, CR_CURL_MT);  /* from here __gc cleans up */
  uv_timer_init(&cm->loop->uv, cm->timer);
  cm->timer->data = cm;
  uv_unref((uv_handle_t *)cm->timer);
  curl_multi_setopt(cm->multi, CURLMOPT_SOCKETFUNCTION, sockfunc);
  curl_multi_setopt(cm->multi, CURLMOPT_SOCKETDATA, cm);
  curl_multi_setopt(cm->multi, CURLMOPT_TIMERFUNCTION, timerfunc);
  curl_multi_setopt(cm->multi, CURLMOPT_TIMERDATA, cm);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &curl_key);
  return cm;
}

/* }================================================================= */


/* {=================================================================
** Requests
** ================================================================== */

static int bufadd(cbuf *b, const char *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    char *np;
    while (cap < b->len + n) cap *= 2;
    if ((np = (char *)realloc(b->p, cap)) == NULL) return -1;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  creq *q = (creq *)ud;
  n *= size;
  if (q->stream) {
    if (q->body.len >= STREAM_HIGH) {  /* nobody reads: hold the transfer */
      q->paused = 1;
      return CURL_WRITEFUNC_PAUSE;
    }
    q->ready = 1;
    if (bufadd(&q->body, p, n) != 0) return 0;
    if (wakeone(q)) uv_stop(&q->cm->loop->uv);  /* see on_timer */
    return n;
  }
  if (q->max_body > 0 && q->body.len + n > q->max_body) {
    q->toolarge = 1;
    return 0;  /* aborts with CURLE_WRITE_ERROR */
  }
  return bufadd(&q->body, p, n) == 0 ? n : 0;
}

/* Keep the header lines of the last response only (after redirects, an
** interim 1xx, a proxy's CONNECT). */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  creq *q = (creq *)ud;
  n *= size;
  if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) q->head.len = 0;
  return bufadd(&q->head, p, n) == 0 ? n : 0;
}

/* Upload bytes xfer:send() queued; pause when there are none yet. */
static size_t on_upload(char *p, size_t size, size_t n, void *ud) {
  creq *q = (creq *)ud;
  size_t avail = q->up.len - q->upos;
  n *= size;
  if (avail == 0) {
    if (q->up_eof) return 0;
    q->up_paused = 1;
    return CURL_READFUNC_PAUSE;
  }
  if (n > avail) n = avail;
  memcpy(p, q->up.p + q->upos, n);
  q->upos += n;
  if (q->upos == q->up.len) q->upos = q->up.len = 0;
  if (!cr_list_empty(&q->upwaiters) && q->up.len - q->upos <= STREAM_HIGH / 4) {
    wakefeeder(q, CR_OK);
    uv_stop(&q->cm->loop->uv);  /* see on_timer */
  }
  return n;
}

/* Field 'k' of the options at 1 (pushed). */
static int field(lua_State *L, const char *k) {
  return lua_getfield(L, 1, k);
}

static const char *strfield(lua_State *L, const char *k) {
  const char *s;
  field(L, k);
  s = lua_tostring(L, -1);
  lua_pop(L, 1);  /* still referenced by the options table */
  return s;
}

static int setup(lua_State *L, creq *q) {
  CURL *e = q->easy;
  const char *s;
  size_t len;
  lua_Integer i, n;
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)q);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "corun/0.1");
  curl_easy_setopt(e, CURLOPT_URL, strfield(L, "url"));
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  s = strfield(L, "method");
  field(L, "body");
  if (q->upload) {  /* chunked: the size is not known */
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
    curl_easy_setopt(e, CURLOPT_READDATA, q);
    if (s != NULL && strcmp(s, "POST") == 0) {
      curl_easy_setopt(e, CURLOPT_POST, 1L);
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    }
    else {
      curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
      if (s != NULL && strcmp(s, "PUT") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s);
    }
    s = NULL;  /* the method is set */
  }
  else if (!lua_isnil(L, -1)) {
    const char *b = lua_tolstring(L, -1, &len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, b);
  }
  if (s != NULL && strcmp(s, "GET") != 0 &&
      !(strcmp(s, "POST") == 0 && !lua_isnil(L, -1))) {
    if (strcmp(s, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s);
  }
  lua_pop(L, 1);
  field(L, "headers");  /* a list of "Name: value" lines */
  n = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
  for (i = 1; i <= n; i++) {
    struct curl_slist *l;
    lua_rawgeti(L, -1, i);
    l = curl_slist_append(q->hdrs, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (l == NULL) return -1;
    q->hdrs = l;
  }
  lua_pop(L, 1);
  if (q->hdrs != NULL) curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->hdrs);
  field(L, "timeout");
  if (lua_isnumber(L, -1))
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(lua_tonumber(L, -1) * 1000));
  field(L, "connect_timeout");
  if (lua_isnumber(L, -1))
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(lua_tonumber(L, -1) * 1000));
  field(L, "follow");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, (long)lua_toboolean(L, -1));
  field(L, "max_redirects");
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)luaL_optinteger(L, -1, 10));
  field(L, "verify");
  if (lua_toboolean(L, -1) == 0 && !lua_isnil(L, -1)) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  field(L, "max_body");
  q->max_body = (size_t)luaL_optinteger(L, -1, 0);
  lua_pop(L, 5);
  if ((s = strfield(L, "resolve")) != NULL) {
    if ((q->resolve = curl_slist_append(NULL, s)) == NULL) return -1;
    curl_easy_setopt(e, CURLOPT_RESOLVE, q->resolve);
  }
  if ((s = strfield(L, "cafile")) != NULL)
    curl_easy_setopt(e, CURLOPT_CAINFO, s);
  if ((s = strfield(L, "cert")) != NULL)
    curl_easy_setopt(e, CURLOPT_SSLCERT, s);
  if ((s = strfield(L, "key")) != NULL)
    curl_easy_setopt(e, CURLOPT_SSLKEY, s);
  return 0;
}

/* Push the results: status, raw header lines, body, effective URL. */
static int results(lua_State *L, creq *q) {
  long status = 0;
  char *url = NULL;
  curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(q->easy, CURLINFO_EFFECTIVE_URL, &url);
  lua_pushinteger(L, status);
  lua_pushlstring(L, q->head.p != NULL ? q->head.p : "", q->head.len);
  if (!q->stream)
    lua_pushlstring(L, q->body.p != NULL ? q->body.p : "", q->body.len);
  lua_pushstring(L, url);
  if (!q->stream) return 4;
  lua_pushvalue(L, 2);  /* the box */
  return 4;  /* status, head, url, box */
}

/* Abort a transfer still in progress (its easy handle leaves the multi
** handle at once). */
static void abort_transfer(creq *q) {
  cr_curl *cm = q->cm;
  if (q->done || cm == NULL) return;
  curl_multi_remove_handle(cm->multi, q->easy);
  cr_list_remove(&q->node);
  cm->active--;
  keepalive(cm);
  q->done = 1;
  q->result = CURLE_ABORTED_BY_CALLBACK;
  wakefeeder(q, CR_CLOSED);
  wakeone(q);  /* the requesting task, or a reader */
}

static int request_k(lua_State *L, int status, lua_KContext ctx) {
  creq *q = (creq *)ctx;
  cr_task *me = q->cm->loop->current;
  int n;
  (void)status;
  q->inreq = 0;
  if (q->stream && me->outcome == CR_OK && !q->done && q->ready)
    return results(L, q);  /* status, head, url, box: the box reads on */
  if (!q->done) {  /* timed out or cancelled: abort the transfer now */
    abort_transfer(q);
    if (!q->boxed) freereq(q);
    cr_task_outcome(L, me);  /* raises Cancelled */
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  if (q->stream && q->toolarge == 0 && q->result == CURLE_OK)
    return results(L, q);
  if (q->toolarge)
    n = curlerror(L, CURLE_FILESIZE_EXCEEDED, "response body too large");
  else if (q->result != CURLE_OK)
    n = curlerror(L, q->result, q->errbuf);
  else
    n = results(L, q);
  if (!q->boxed) freereq(q);
  return n;
}

/* core.http_request{url =, method =, headers = {"K: v", ...}, body =,
** timeout =, connect_timeout =, follow =, max_redirects =, verify =,
** cafile =, cert =, key =, max_body =, resolve = "host:port:address"}
** -> status, header lines, body, url | nil, err, code */
static int http_request(lua_State *L) {
  cr_loop *lp = cr_loop_get(L);
  cr_curl *cm;
  cr_task *me;
  creq *q;
  CURLMcode mc;
  creq **box = NULL;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  me = cr_task_enter(L, lp, "request");
  cr_task_checkcancel(L, me);
  cm = getmulti(L);
  field(L, "stream");  /* at 2: nil, or the box of a streamed body */
  field(L, "on_upload");  /* a function: the request body is streamed */
  if (lua_toboolean(L, 2) || !lua_isnil(L, 3)) {
    lua_settop(L, 1);
    box = (creq **)lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, CR_XFER_MT);
  }
  if ((q = (creq *)calloc(1, sizeof *q)) == NULL)
    return luaL_error(L, "request: not enough memory");
  cr_list_init(&q->upwaiters);
  if (box != NULL) {
    *box = q;
    q->boxed = 1;
    field(L, "stream");
    q->stream = lua_toboolean(L, -1);
    field(L, "on_upload");
    q->upload = !lua_isnil(L, -1);
    lua_pop(L, 2);
  }
  cr_list_init(&q->waiters);
  cr_list_init(&q->node);
  q->cm = cm;
  if ((q->easy = curl_easy_init()) == NULL || setup(L, q) != 0) {
    if (box != NULL) *box = NULL;
    freereq(q);
    return curlerror(L, CURLE_OUT_OF_MEMORY, NULL);
  }
  if ((mc = curl_multi_add_handle(cm->multi, q->easy)) != CURLM_OK) {
    if (box != NULL) *box = NULL;
    freereq(q);
    return luaL_error(L, "request: %s", curl_multi_strerror(mc));
  }
  cr_list_push(&cm->reqs, &q->node);
  cm->active++;
  keepalive(cm);
  if (q->upload) {  /* on_upload(box) starts the task that feeds it */
    field(L, "on_upload");
    lua_pushvalue(L, 2);
    lua_call(L, 1, 0);
  }
  lua_settop(L, 2);
  q->inreq = 1;
  return cr_wait_on(L, me, &q->waiters, -1, (lua_KContext)q, request_k);
}

/* {=================================================================
** Streamed bodies: the box of a transfer still in progress
** ================================================================== */

static creq *checkxfer(lua_State *L) {
  creq **box = (creq **)luaL_checkudata(L, 1, CR_XFER_MT);
  if (*box == NULL) luaL_error(L, "the response body is closed");
  return *box;
}

static int xfer_read_k(lua_State *L, int status, lua_KContext ctx);

/* A chunk of body, or nil at its end, or nil, err, code. */
static int xfer_answer(lua_State *L, creq *q) {
  if (q->body.len > 0) {
    lua_pushlstring(L, q->body.p, q->body.len);
    q->body.len = 0;
    if (q->paused && !q->done) {
      q->paused = 0;
      curl_easy_pause(q->easy, CURLPAUSE_CONT);  /* may deliver more now */
    }
    return 1;
  }
  if (!q->done) return 0;
  if (q->toolarge)
    return curlerror(L, CURLE_FILESIZE_EXCEEDED, "response body too large");
  if (q->result != CURLE_OK) return curlerror(L, q->result, q->errbuf);
  lua_pushnil(L);
  return 1;
}

/* xfer:read([timeout]) -> chunk | nil (end) | nil, err, code */
static int xfer_read(lua_State *L) {
  creq *q = checkxfer(L);
  double timeout = cr_opttimeout(L, 2);
  cr_task *me;
  int r;
  if ((r = xfer_answer(L, q)) != 0) return r;
  me = cr_task_enter(L, q->cm->loop, "read");
  lua_settop(L, 1);
  return cr_wait_on(L, me, &q->waiters, timeout, 0, xfer_read_k);
}

static int xfer_read_k(lua_State *L, int status, lua_KContext ctx) {
  creq *q = checkxfer(L);
  int r;
  (void)status; (void)ctx;
  if (cr_task_outcome(L, q->cm->loop->current) == CR_TIMEOUT) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  if ((r = xfer_answer(L, q)) != 0) return r;
  return cr_wait_on(L, q->cm->loop->current, &q->waiters, -1, 0,
                    xfer_read_k);
}

static int send_k(lua_State *L, int status, lua_KContext ctx) {
  creq *q = checkxfer(L);
  (void)status; (void)ctx;
  if (cr_task_outcome(L, q->cm->loop->current) == CR_CLOSED || q->done) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* xfer:send(chunk | nil) -> true | nil, "closed": queue upload bytes (nil:
** the end); parks while more than 64 KB wait to be sent. */
static int xfer_send(lua_State *L) {
  creq *q = checkxfer(L);
  size_t len = 0;
  const char *s = luaL_optlstring(L, 2, NULL, &len);
  if (q->done || q->up_eof) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (s == NULL) q->up_eof = 1;
  else if (bufadd(&q->up, s, len) != 0)
    return luaL_error(L, "send: not enough memory");
  if (q->up_paused) {
    q->up_paused = 0;
    curl_easy_pause(q->easy, CURLPAUSE_CONT);
  }
  if (!q->done && q->up.len - q->upos > STREAM_HIGH) {
    cr_task *me = cr_task_enter(L, q->cm->loop, "send");
    lua_settop(L, 1);
    return cr_wait_on(L, me, &q->upwaiters, -1, 0, send_k);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* xfer:close(): abort the transfer if it is still running, free it. */
static int xfer_close(lua_State *L) {
  creq **box = (creq **)luaL_checkudata(L, 1, CR_XFER_MT);
  creq *q = *box;
  if (q != NULL) {
    *box = NULL;
    abort_transfer(q);
    if (q->inreq) q->boxed = 0;  /* the request frees it */
    else freereq(q);
  }
  return 0;
}

/* }================================================================= */

void cr_http_client_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"http_request", http_request}, {NULL, NULL}
  };
  static const luaL_Reg meta[] = {{"__gc", multi_gc}, {NULL, NULL}};
  static const luaL_Reg xmeta[] = {
    {"__gc", xfer_close}, {"__close", xfer_close}, {NULL, NULL}
  };
  static const luaL_Reg xmethods[] = {
    {"read", xfer_read}, {"send", xfer_send}, {"close", xfer_close},
    {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  curl_global_init(CURL_GLOBAL_DEFAULT);
  cr_setfuncs(L, funcs, loopidx);
  luaL_newmetatable(L, CR_CURL_MT);
  cr_setfuncs(L, meta, loopidx);
  lua_pop(L, 1);
  cr_newclass(L, CR_XFER_MT, xmeta, xmethods, loopidx);
}
