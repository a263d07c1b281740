/*
** heap.h
** Binary min-heap of timer entries keyed by (deadline, seq). Each entry
** knows its own slot, so removal is O(log n) without a search. The array
** grows by doubling and never shrinks below its high-water mark: arming and
** disarming a timer allocates nothing once the heap has grown.
*/

#ifndef corun_heap_h
#define corun_heap_h

#include <stdlib.h>

typedef struct cr_timer {
  double deadline;            /* loop time at which it fires */
  unsigned seq;               /* arm order: FIFO among equal deadlines */
  int slot;                   /* index in the heap, -1 when not armed */
} cr_timer;

typedef struct cr_heap {
  cr_timer **items;           /* owned: the slot array */
  int n, cap;
} cr_heap;

static inline void cr_heap_init(cr_heap *h) {
  h->items = NULL;
  h->n = h->cap = 0;
}

static inline void cr_heap_free(cr_heap *h) {
  free(h->items);
  cr_heap_init(h);
}

static inline int cr_timer_less(const cr_timer *a, const cr_timer *b) {
  if (a->deadline != b->deadline) return a->deadline < b->deadline;
  return (int)(a->seq - b->seq) < 0;  /* wrap-safe */
}

static inline void cr_heap_set(cr_heap *h, int i, cr_timer *t) {
  h->items[i] = t;
  t->slot = i;
}

static inline void cr_heap_up(cr_heap *h, int i) {
  cr_timer *t = h->items[i];
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!cr_timer_less(t, h->items[p])) break;
    cr_heap_set(h, i, h->items[p]);
    i = p;
  }
  cr_heap_set(h, i, t);
}

static inline void cr_heap_down(cr_heap *h, int i) {
  cr_timer *t = h->items[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && cr_timer_less(h->items[c + 1], h->items[c])) c++;
    if (!cr_timer_less(h->items[c], t)) break;
    cr_heap_set(h, i, h->items[c]);
    i = c;
  }
  cr_heap_set(h, i, t);
}

/* Returns 0, or -1 when the slot array cannot grow. */
static inline int cr_heap_insert(cr_heap *h, cr_timer *t) {
  if (h->n == h->cap) {
    int cap = h->cap ? h->cap * 2 : 64;
    cr_timer **items = (cr_timer **)realloc(h->items, cap * sizeof *items);
    if (items == NULL) return -1;
    h->items = items;
    h->cap = cap;
  }
  cr_heap_set(h, h->n++, t);
  cr_heap_up(h, h->n - 1);
  return 0;
}

static inline void cr_heap_remove(cr_heap *h, cr_timer *t) {
  int i = t->slot;
  if (i < 0) return;
  t->slot = -1;
  if (--h->n == i) return;
  cr_heap_set(h, i, h->items[h->n]);
  if (i > 0 && cr_timer_less(h->items[i], h->items[(i - 1) / 2]))
    cr_heap_up(h, i);
  else
    cr_heap_down(h, i);
}

static inline cr_timer *cr_heap_min(const cr_heap *h) {
  return h->n > 0 ? h->items[0] : NULL;
}

#endif
