/*
** list.h
** Intrusive circular doubly linked list (the shape of libuv's uv__queue).
** A node whose links point to itself is "not linked"; unlinking leaves the
** node in that state, so a second unlink is harmless and cr_list_linked()
** tells whether an object is parked somewhere.
*/

#ifndef corun_list_h
#define corun_list_h

#include <stddef.h>

typedef struct cr_list {
  struct cr_list *next;
  struct cr_list *prev;
} cr_list;

#define cr_container_of(ptr, type, field) \
  ((type *)((char *)(ptr) - offsetof(type, field)))

static inline void cr_list_init(cr_list *h) {
  h->next = h;
  h->prev = h;
}

static inline int cr_list_empty(const cr_list *h) {
  return h->next == h;
}

/* A node is linked when it is part of some list other than itself. */
static inline int cr_list_linked(const cr_list *n) {
  return n->next != n;
}

static inline cr_list *cr_list_head(const cr_list *h) {
  return h->next;
}

static inline void cr_list_push(cr_list *h, cr_list *n) {  /* at the tail */
  n->next = h;
  n->prev = h->prev;
  n->prev->next = n;
  h->prev = n;
}

static inline void cr_list_remove(cr_list *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  cr_list_init(n);
}

/* Move every node of 'h' to the (empty) list 'to'; 'h' becomes empty. */
static inline void cr_list_move(cr_list *h, cr_list *to) {
  if (cr_list_empty(h)) {
    cr_list_init(to);
    return;
  }
  to->next = h->next;
  to->prev = h->prev;
  to->next->prev = to;
  to->prev->next = to;
  cr_list_init(h);
}

/* Unlink and return the first node, or NULL when empty. */
static inline cr_list *cr_list_shift(cr_list *h) {
  cr_list *n;
  if (cr_list_empty(h)) return NULL;
  n = h->next;
  cr_list_remove(n);
  return n;
}

#endif
