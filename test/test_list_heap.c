/*
** test_list_heap.c
** C tests of the intrusive list (list.h) and the timer heap (heap.h), in
** libuv's TEST_IMPL shape: each test is a function; ASSERT aborts with the
** failing line; main runs them all and prints a tally.
*/

#include <stdio.h>
#include <stdlib.h>

#include "list.h"
#include "heap.h"

#define ASSERT(expr) do { \
    if (!(expr)) { \
      fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, \
              #expr); \
      abort(); \
    } \
  } while (0)

#define TEST_IMPL(name) static void test_##name(void)

typedef struct item {
  cr_list node;
  int v;
} item;

TEST_IMPL(list_fifo) {
  cr_list h;
  item a = {{0}, 1}, b = {{0}, 2}, c = {{0}, 3};
  cr_list_init(&h);
  cr_list_init(&a.node);
  ASSERT(cr_list_empty(&h));
  ASSERT(!cr_list_linked(&a.node));
  cr_list_push(&h, &a.node);
  cr_list_push(&h, &b.node);
  cr_list_push(&h, &c.node);
  ASSERT(cr_list_linked(&a.node));
  cr_list_remove(&b.node);
  ASSERT(!cr_list_linked(&b.node));
  cr_list_remove(&b.node);  /* a second unlink is harmless */
  ASSERT(cr_container_of(cr_list_shift(&h), item, node)->v == 1);
  ASSERT(cr_container_of(cr_list_shift(&h), item, node)->v == 3);
  ASSERT(cr_list_shift(&h) == NULL);
}

TEST_IMPL(list_move) {
  cr_list h, to;
  item v[4];
  int i;
  cr_list_init(&h);
  cr_list_move(&h, &to);
  ASSERT(cr_list_empty(&to));
  for (i = 0; i < 4; i++) {
    v[i].v = i;
    cr_list_push(&h, &v[i].node);
  }
  cr_list_move(&h, &to);
  ASSERT(cr_list_empty(&h));
  ASSERT(cr_list_head(&to) == &v[0].node);
  cr_list_remove(&v[0].node);
  cr_list_push(&h, &v[0].node);
  ASSERT(cr_list_shift(&to) == &v[1].node);  /* v[0] moved back to h */
  for (i = 2; i < 4; i++)
    ASSERT(cr_container_of(cr_list_shift(&to), item, node)->v == i);
  ASSERT(cr_list_empty(&to));
}

TEST_IMPL(heap_order) {
  enum { N = 1000 };
  cr_heap h;
  cr_timer *t = calloc(N, sizeof *t);
  double last = -1;
  int i;
  cr_heap_init(&h);
  srand(7);
  for (i = 0; i < N; i++) {
    t[i].deadline = rand() % 100;
    t[i].seq = (unsigned long long)i;
    t[i].slot = -1;
    ASSERT(cr_heap_insert(&h, &t[i]) == 0);
  }
  for (i = 0; i < N; i += 3) cr_heap_remove(&h, &t[i]);
  for (i = 0; i < N; i += 3) ASSERT(t[i].slot == -1);
  {
    unsigned long long lastseq = 0;
    int n = 0;
    cr_timer *m;
    while ((m = cr_heap_min(&h)) != NULL) {
      ASSERT(m->deadline >= last);
      if (m->deadline == last) ASSERT(m->seq > lastseq);  /* FIFO ties */
      last = m->deadline;
      lastseq = m->seq;
      cr_heap_remove(&h, m);
      n++;
    }
    ASSERT(n == N - (N + 2) / 3);
  }
  cr_heap_free(&h);
  free(t);
}

int main(void) {
  test_list_fifo();
  test_list_move();
  test_heap_order();
  printf("3 passed, 0 failed\n");
  return 0;
}
