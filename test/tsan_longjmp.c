/*
** tsan_longjmp.c: preloaded after libtsan for the ThreadSanitizer stage of
** test/run.sh. Debian's lua5.4 (and liblua5.4.a, linked into the runner)
** are built with _FORTIFY_SOURCE, so Lua errors and yields across C
** functions leave through __longjmp_chk, which libtsan does not intercept:
** its shadow call stack then never unwinds and grows at every such jump
** until TSan fails ("CHECK failed: sanitizer_stackdepot.cpp ...") and
** slows to a crawl. Forwarding __longjmp_chk to longjmp (intercepted)
** lets TSan unwind as for a plain longjmp.
** Build: gcc -U_FORTIFY_SOURCE -O1 -shared -fPIC -o tsan_longjmp.so this
*/

#include <setjmp.h>

void __longjmp_chk(jmp_buf env, int val);

void __longjmp_chk(jmp_buf env, int val) {
  longjmp(env, val);
}
