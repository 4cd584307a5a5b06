/* list.h - intrusive doubly linked lists: any struct with `prev` and
 * `next` members, a plain head pointer, O(1) unlink. */
#ifndef DEVBRIDGE_CORE_LIST_H
#define DEVBRIDGE_CORE_LIST_H

#define LIST_PUSH(head, x)                                                                         \
	do {                                                                                       \
		(x)->prev = NULL;                                                                  \
		(x)->next = (head);                                                                \
		if (head)                                                                          \
			(head)->prev = (x);                                                        \
		(head) = (x);                                                                      \
	} while (0)

#define LIST_UNLINK(head, x)                                                                       \
	do {                                                                                       \
		if ((x)->prev)                                                                     \
			(x)->prev->next = (x)->next;                                               \
		else                                                                               \
			(head) = (x)->next;                                                        \
		if ((x)->next)                                                                     \
			(x)->next->prev = (x)->prev;                                               \
		(x)->prev = (x)->next = NULL;                                                      \
	} while (0)

#endif
