/*
** tls.c
** TLS over OpenSSL memory BIOs: the C half of corun.tls.
**
** Nothing here does I/O or parks a task. A context (corun.tls_context)
** holds an SSL_CTX: certificates, CAs, verification and ALPN. A connection
** (corun.tls_conn) holds an SSL whose network side is a pair of memory
** BIOs: what the peer sent is fed in with conn:feed(), what OpenSSL wants
** sent is taken out with conn:take(). lua/corun/tls.lua moves those bytes
** over a corun stream (one TLS record at a time: a 5-byte header, then
** exactly its length) and so inherits the stream's parking, timeouts,
** back-pressure and cancellation.
** Failures are returned as nil, "ETLS: <OpenSSL's reason>", "ETLS".
*/

#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>

#include "corun.h"

#define CR_TLSCTX_MT  "corun.tls_context"
#define CR_TLSCONN_MT "corun.tls_conn"
#define READ_MAX (64 * 1024)

typedef struct cr_tlsctx {
  SSL_CTX *ctx;               /* owned: SSL_CTX_free in __gc */
  unsigned char *alpn;        /* owned: ALPN list in wire format */
  unsigned alpnlen;
  int server;
} cr_tlsctx;

typedef struct cr_tlsconn {
  SSL *ssl;                   /* owned; it owns both BIOs */
  BIO *rbio, *wbio;           /* network side: peer -> ssl, ssl -> peer */
} cr_tlsconn;

/* Push nil, "ETLS: <what>[: <detail>]", "ETLS"; returns 3. */
static int tlserror(lua_State *L, const char *what, const char *detail) {
  lua_pushnil(L);
  if (detail != NULL && *detail != '\0')
    lua_pushfstring(L, "ETLS: %s: %s", what, detail);
  else
    lua_pushfstring(L, "ETLS: %s", what);
  lua_pushliteral(L, "ETLS");
  return 3;
}

/* The error OpenSSL queued (its reason string), with the certificate
** verification result when that is what failed. */
static int ssl_error(lua_State *L, SSL *ssl, const char *fallback) {
  unsigned long e = ERR_peek_last_error();
  const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
  long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
  int r;
  if (reason == NULL) reason = fallback;
  if (vr != X509_V_OK && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
    r = tlserror(L, reason, X509_verify_cert_error_string(vr));
  else
    r = tlserror(L, reason, NULL);
  ERR_clear_error();
  return r;
}

/* {=================================================================
** Contexts
** ================================================================== */

static cr_tlsctx *checkctx(lua_State *L, int idx) {
  cr_tlsctx *c = (cr_tlsctx *)luaL_checkudata(L, idx, CR_TLSCTX_MT);
  if (c->ctx == NULL) luaL_error(L, "the TLS context is not initialised");
  return c;
}

static int ctx_gc(lua_State *L) {
  cr_tlsctx *c = (cr_tlsctx *)luaL_checkudata(L, 1, CR_TLSCTX_MT);
  if (c->ctx != NULL) SSL_CTX_free(c->ctx);
  c->ctx = NULL;
  free(c->alpn);
  c->alpn = NULL;
  return 0;
}

/* The string field 'k' of the options at 1, or NULL. */
static const char *optstr(lua_State *L, const char *k) {
  const char *s;
  lua_getfield(L, 1, k);
  if (lua_isnil(L, -1)) s = NULL;
  else if ((s = lua_tostring(L, -1)) == NULL)
    luaL_error(L, "bad option '%s' to 'tls' (string expected)", k);
  lua_pop(L, 1);  /* still referenced by the options table */
  return s;
}

/* Build the ALPN wire list from opts.alpn (a string or a list). */
static void setalpn(lua_State *L, cr_tlsctx *c) {
  luaL_Buffer b;
  lua_Integer i, n;
  size_t len;
  const char *s;
  lua_getfield(L, 1, "alpn");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (lua_isstring(L, -1)) {
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
  }
  luaL_argcheck(L, lua_istable(L, -1), 1, "alpn must be a string or a list");
  luaL_buffinit(L, &b);
  n = luaL_len(L, -2);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    s = lua_tolstring(L, -1, &len);
    if (s == NULL || len == 0 || len > 255)
      luaL_error(L, "bad option 'alpn' to 'tls' (protocol names of 1..255 bytes)");
    lua_pop(L, 1);
    luaL_addchar(&b, (char)len);
    luaL_addlstring(&b, s, len);
  }
  luaL_pushresult(&b);
  s = lua_tolstring(L, -1, &len);
  c->alpn = (unsigned char *)malloc(len > 0 ? len : 1);
  if (c->alpn == NULL) luaL_error(L, "tls: not enough memory");
  memcpy(c->alpn, s, len);
  c->alpnlen = (unsigned)len;
  lua_pop(L, 2);
}

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg) {
  cr_tlsctx *c = (cr_tlsctx *)arg;
  unsigned char *o;
  (void)ssl;
  if (SSL_select_next_proto(&o, outlen, c->alpn, c->alpnlen, in, inlen)
      != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = o;
  return SSL_TLSEXT_ERR_OK;
}

/* Load CAs, certificate and key; 0, or the error pushed (3 values). */
static int loadfiles(lua_State *L, cr_tlsctx *c, const char *cafile,
                     const char *capath, const char *cert, const char *key) {
  if (cafile != NULL || capath != NULL) {
    if (SSL_CTX_load_verify_locations(c->ctx, cafile, capath) != 1)
      return ssl_error(L, NULL, "cannot load cafile");
  }
  else if (!c->server && SSL_CTX_set_default_verify_paths(c->ctx) != 1)
    return ssl_error(L, NULL, "cannot load the system CAs");
  if (cert != NULL &&
      SSL_CTX_use_certificate_chain_file(c->ctx, cert) != 1)
    return ssl_error(L, NULL, "cannot load cert");
  if (key != NULL &&
      SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM) != 1)
    return ssl_error(L, NULL, "cannot load key");
  if (cert != NULL && SSL_CTX_check_private_key(c->ctx) != 1)
    return ssl_error(L, NULL, "key does not match cert");
  return 0;
}

/* The TLS version named by the option 'k' ("tlsv1_2" or "tlsv1_3"), or
** 'dflt' when it is not given. */
static int optversion(lua_State *L, const char *k, int dflt) {
  const char *v = optstr(L, k);
  if (v == NULL) return dflt;
  if (strcmp(v, "tlsv1_2") == 0) return TLS1_2_VERSION;
  if (strcmp(v, "tlsv1_3") == 0) return TLS1_3_VERSION;
  return luaL_error(L, "bad option '%s' to 'tls' (\"tlsv1_2\" or \"tlsv1_3\")", k);
}

/* Ciphers, cipher suites, versions and verification depth, when given;
** 0, or the error pushed (3 values). */
static int setlimits(lua_State *L, cr_tlsctx *c) {
  const char *ciphers = optstr(L, "ciphers");
  const char *suites = optstr(L, "ciphersuites");
  int minv = optversion(L, "min_protocol", TLS1_2_VERSION);
  int maxv = optversion(L, "max_protocol", 0);
  SSL_CTX_set_min_proto_version(c->ctx, minv);
  if (maxv != 0) SSL_CTX_set_max_proto_version(c->ctx, maxv);
  if (ciphers != NULL && SSL_CTX_set_cipher_list(c->ctx, ciphers) != 1)
    return ssl_error(L, NULL, "no usable cipher in 'ciphers'");
  if (suites != NULL && SSL_CTX_set_ciphersuites(c->ctx, suites) != 1)
    return ssl_error(L, NULL, "no usable cipher suite in 'ciphersuites'");
  lua_getfield(L, 1, "depth");
  if (lua_isinteger(L, -1))
    SSL_CTX_set_verify_depth(c->ctx, (int)lua_tointeger(L, -1));
  lua_pop(L, 1);
  return 0;
}

/* core.tls_context{server =, cafile =, capath =, cert =, key =, alpn =,
** verify =, ciphers =, ciphersuites =, min_protocol =, max_protocol =,
** depth =} -> context | nil, err, "ETLS" */
static int tls_context(lua_State *L) {
  cr_tlsctx *c;
  const char *cafile, *capath, *cert, *key;
  int verify;
  luaL_checktype(L, 1, LUA_TTABLE);
  cafile = optstr(L, "cafile");
  capath = optstr(L, "capath");
  cert = optstr(L, "cert");
  key = optstr(L, "key");
  lua_getfield(L, 1, "server");
  lua_getfield(L, 1, "verify");
  c = (cr_tlsctx *)lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CR_TLSCTX_MT);
  c->server = lua_toboolean(L, -3);
  /* clients verify unless told verify = false; servers ask for a client
  ** certificate only when told verify = true */
  verify = c->server ? lua_toboolean(L, -2)
                     : (lua_isnil(L, -2) || lua_toboolean(L, -2));
  if (c->server && (cert == NULL || key == NULL))
    return luaL_error(L, "bad argument #2 to 'wrap' (a server needs cert and key)");
  ERR_clear_error();
  c->ctx = SSL_CTX_new(c->server ? TLS_server_method() : TLS_client_method());
  if (c->ctx == NULL) return ssl_error(L, NULL, "cannot create a context");
  SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                           SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (setlimits(L, c) != 0) return 3;
  if (loadfiles(L, c, cafile, capath, cert, key) != 0) return 3;
  if (verify)
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER |
                       (c->server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
  else
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
  setalpn(L, c);
  if (c->alpn != NULL) {
    if (c->server) SSL_CTX_set_alpn_select_cb(c->ctx, alpn_select, c);
    else SSL_CTX_set_alpn_protos(c->ctx, c->alpn, c->alpnlen);
  }
  return 1;
}

/* }================================================================= */


/* {=================================================================
** Connections
** ================================================================== */

static cr_tlsconn *checkconn(lua_State *L) {
  cr_tlsconn *t = (cr_tlsconn *)luaL_checkudata(L, 1, CR_TLSCONN_MT);
  if (t->ssl == NULL) luaL_error(L, "the TLS connection is freed");
  return t;
}

static int conn_gc(lua_State *L) {
  cr_tlsconn *t = (cr_tlsconn *)luaL_checkudata(L, 1, CR_TLSCONN_MT);
  if (t->ssl != NULL) SSL_free(t->ssl);
  t->ssl = NULL;
  return 0;
}

/* Check the peer's certificate against 'host' (a name: also sent as SNI;
** an IP address: checked against the certificate's IP entries). */
static int sethost(SSL *ssl, const char *host) {
  unsigned char ip[16];
  int isip = inet_pton(AF_INET, host, ip) == 1 ||
             inet_pton(AF_INET6, host, ip) == 1;
  int verify = SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE;
  if (isip)
    return verify ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                  : 1;
  SSL_set_tlsext_host_name(ssl, host);
  return verify ? SSL_set1_host(ssl, host) : 1;
}

/* ctx:new([host]) -> conn: a connection in client or server mode; a
** client sends 'host' as SNI and checks the certificate names it. */
static int ctx_new(lua_State *L) {
  cr_tlsctx *c = checkctx(L, 1);
  const char *host = luaL_optstring(L, 2, NULL);
  cr_tlsconn *t = (cr_tlsconn *)lua_newuserdatauv(L, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, CR_TLSCONN_MT);
  ERR_clear_error();
  if ((t->ssl = SSL_new(c->ctx)) == NULL)
    return ssl_error(L, NULL, "cannot create a connection");
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (t->rbio == NULL || t->wbio == NULL) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    return tlserror(L, "not enough memory", NULL);
  }
  BIO_set_mem_eof_return(t->rbio, -1);  /* empty: "want read", not EOF */
  BIO_set_mem_eof_return(t->wbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  if (c->server) SSL_set_accept_state(t->ssl);
  else {
    SSL_set_connect_state(t->ssl);
    if (host != NULL && sethost(t->ssl, host) != 1)
      return ssl_error(L, t->ssl, "bad host name");
  }
  return 1;
}

/* The outcome of an SSL call that returned 'r': 1 done, 0 wants input
** ("want" pushed by the caller), -1 clean close, or the error pushed. */
static int outcome(lua_State *L, cr_tlsconn *t, int r, int *pushed) {
  int e = SSL_get_error(t->ssl, r);
  *pushed = 0;
  switch (e) {
    case SSL_ERROR_NONE: return 1;
    case SSL_ERROR_WANT_READ: case SSL_ERROR_WANT_WRITE: return 0;
    case SSL_ERROR_ZERO_RETURN: return -1;
    default:
      *pushed = ssl_error(L, t->ssl, "protocol error");
      return -2;
  }
}

/* conn:handshake() -> true | "want" | nil, err, "ETLS" */
static int conn_handshake(lua_State *L) {
  cr_tlsconn *t = checkconn(L);
  int pushed, r;
  ERR_clear_error();
  r = outcome(L, t, SSL_do_handshake(t->ssl), &pushed);
  if (pushed) return pushed;
  if (r == 1) lua_pushboolean(L, 1);
  else if (r == 0) lua_pushliteral(L, "want");
  else return tlserror(L, "connection closed during handshake", NULL);
  return 1;
}

/* conn:feed(s): bytes the peer sent. */
static int conn_feed(lua_State *L) {
  cr_tlsconn *t = checkconn(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  if (len > 0 && BIO_write(t->rbio, s, (int)len) != (int)len)
    return luaL_error(L, "tls: not enough memory");
  return 0;
}

/* conn:take() -> the bytes to send to the peer, or nil. */
static int conn_take(lua_State *L) {
  cr_tlsconn *t = checkconn(L);
  char *p;
  long n = BIO_get_mem_data(t->wbio, &p);
  if (n <= 0) return 0;
  lua_pushlstring(L, p, (size_t)n);
  (void)BIO_reset(t->wbio);
  return 1;
}

/* conn:read() -> plaintext | "" (wants input) | false (the peer closed)
** | nil, err, "ETLS" */
static int conn_read(lua_State *L) {
  cr_tlsconn *t = checkconn(L);
  luaL_Buffer b;
  size_t got = 0;
  int pushed = 0, r = 1;
  char *p;
  ERR_clear_error();
  luaL_buffinit(L, &b);
  while (got < READ_MAX) {
    size_t n = 0;
    p = luaL_prepbuffsize(&b, 16384);
    r = SSL_read_ex(t->ssl, p, 16384, &n);
    if (r != 1) break;
    luaL_addsize(&b, n);
    got += n;
  }
  if (got > 0) {
    ERR_clear_error();
    luaL_pushresult(&b);
    return 1;
  }
  r = outcome(L, t, 0, &pushed);
  if (pushed) return pushed;
  if (r == 0) lua_pushliteral(L, "");
  else lua_pushboolean(L, 0);
  return 1;
}

/* conn:write(s) -> true | nil, err: encrypts all of 's' (then take()). */
static int conn_write(lua_State *L) {
  cr_tlsconn *t = checkconn(L);
  size_t len, off = 0, n;
  const char *s = luaL_checklstring(L, 2, &len);
  int pushed;
  ERR_clear_error();
  while (off < len) {
    if (SSL_write_ex(t->ssl, s + off, len - off, &n) != 1) {
      if (outcome(L, t, 0, &pushed) < -1) return pushed;
      return tlserror(L, "cannot write: the connection is not open", NULL);
    }
    off += n;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* conn:shutdown(): queue a close_notify (then take()). */
static int conn_shutdown(lua_State *L) {
  cr_tlsconn *t = checkconn(L);
  ERR_clear_error();
  if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
  ERR_clear_error();
  return 0;
}

/* conn:info() -> {protocol =, cipher =, bits =, alpn =} */
static int conn_info(lua_State *L) {
  cr_tlsconn *t = checkconn(L);
  const unsigned char *a = NULL;
  unsigned alen = 0;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, SSL_get_version(t->ssl));
  lua_setfield(L, -2, "protocol");
  lua_pushstring(L, SSL_get_cipher_name(t->ssl));
  lua_setfield(L, -2, "cipher");
  lua_pushinteger(L, SSL_get_cipher_bits(t->ssl, NULL));
  lua_setfield(L, -2, "bits");
  SSL_get0_alpn_selected(t->ssl, &a, &alen);
  if (alen > 0) {
    lua_pushlstring(L, (const char *)a, alen);
    lua_setfield(L, -2, "alpn");
  }
  return 1;
}

/* conn:verify_result() -> nil (the peer's certificate verified, or no
** verification asked) | OpenSSL's text for why it did not */
static int conn_verify_result(lua_State *L) {
  cr_tlsconn *t = checkconn(L);
  long vr = SSL_get_verify_result(t->ssl);
  if (vr == X509_V_OK) return 0;
  lua_pushstring(L, X509_verify_cert_error_string(vr));
  return 1;
}

/* Push a name as a list of {oid =, name =, value =}. */
static void pushname(lua_State *L, X509_NAME *name) {
  int i, n = X509_NAME_entry_count(name);
  char oid[80];
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
    ASN1_OBJECT *o = X509_NAME_ENTRY_get_object(e);
    ASN1_STRING *v = X509_NAME_ENTRY_get_data(e);
    int nid = OBJ_obj2nid(o);
    lua_createtable(L, 0, 3);
    OBJ_obj2txt(oid, sizeof oid, o, 1);
    lua_pushstring(L, oid);
    lua_setfield(L, -2, "oid");
    lua_pushstring(L, nid != NID_undef ? OBJ_nid2ln(nid) : oid);
    lua_setfield(L, -2, "name");
    lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(v),
                    (size_t)ASN1_STRING_length(v));
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, i + 1);
  }
}

/* Push the text of a time (ASN1_TIME_print's "Mon DD HH:MM:SS YYYY GMT"). */
static void pushtime(lua_State *L, const ASN1_TIME *tm) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p;
  long n;
  if (b == NULL) luaL_error(L, "tls: not enough memory");
  ASN1_TIME_print(b, tm);
  n = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, n > 0 ? (size_t)n : 0);
  BIO_free(b);
}

/* conn:peercert() -> {pem =, subject =, issuer =, serial =, notbefore =,
** notafter =, sha1 =, sha256 =} | nil (no certificate) */
static int conn_peercert(lua_State *L) {
  cr_tlsconn *t = checkconn(L);
  X509 *x = SSL_get1_peer_certificate(t->ssl);
  BIO *b;
  char *p, *hex;
  long n;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen, i;
  static const char digits[] = "0123456789abcdef";
  char buf[2 * EVP_MAX_MD_SIZE + 1];
  BIGNUM *bn;
  if (x == NULL) return 0;
  lua_createtable(L, 0, 8);
  b = BIO_new(BIO_s_mem());
  if (b == NULL || PEM_write_bio_X509(b, x) != 1) {
    BIO_free(b);
    X509_free(x);
    return tlserror(L, "cannot encode the certificate", NULL);
  }
  n = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, n > 0 ? (size_t)n : 0);
  lua_setfield(L, -2, "pem");
  BIO_free(b);
  pushname(L, X509_get_subject_name(x));
  lua_setfield(L, -2, "subject");
  pushname(L, X509_get_issuer_name(x));
  lua_setfield(L, -2, "issuer");
  pushtime(L, X509_get0_notBefore(x));
  lua_setfield(L, -2, "notbefore");
  pushtime(L, X509_get0_notAfter(x));
  lua_setfield(L, -2, "notafter");
  bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
  if (bn != NULL && (hex = BN_bn2hex(bn)) != NULL) {
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "serial");
    OPENSSL_free(hex);
  }
  BN_free(bn);
  if (X509_digest(x, EVP_sha1(), md, &mdlen) == 1) {
    for (i = 0; i < mdlen; i++) {
      buf[2 * i] = digits[md[i] >> 4];
      buf[2 * i + 1] = digits[md[i] & 15];
    }
    lua_pushlstring(L, buf, 2 * mdlen);
    lua_setfield(L, -2, "sha1");
  }
  if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1) {
    for (i = 0; i < mdlen; i++) {
      buf[2 * i] = digits[md[i] >> 4];
      buf[2 * i + 1] = digits[md[i] & 15];
    }
    lua_pushlstring(L, buf, 2 * mdlen);
    lua_setfield(L, -2, "sha256");
  }
  X509_free(x);
  return 1;
}

/* }================================================================= */

void cr_tls_open_lib(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"tls_context", tls_context}, {NULL, NULL}
  };
  static const luaL_Reg ctxmeta[] = {{"__gc", ctx_gc}, {NULL, NULL}};
  static const luaL_Reg ctxmethods[] = {{"new", ctx_new}, {NULL, NULL}};
  static const luaL_Reg connmeta[] = {{"__gc", conn_gc}, {NULL, NULL}};
  static const luaL_Reg connmethods[] = {
    {"handshake", conn_handshake}, {"feed", conn_feed}, {"take", conn_take},
    {"read", conn_read}, {"write", conn_write}, {"shutdown", conn_shutdown},
    {"info", conn_info}, {"verify_result", conn_verify_result},
    {"peercert", conn_peercert}, {NULL, NULL}
  };
  int loopidx = lua_gettop(L) - 1;  /* [loop, module] */
  cr_setfuncs(L, funcs, loopidx);
  cr_newclass(L, CR_TLSCTX_MT, ctxmeta, ctxmethods, loopidx);
  cr_newclass(L, CR_TLSCONN_MT, connmeta, connmethods, loopidx);
}
