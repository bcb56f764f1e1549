package membership

import "time"

// dueQueue holds items in the order they come due. Every item is pushed with a due time no
// earlier than those already in it (a fixed delay after the moment it is pushed), so a
// first-in first-out queue is enough. Items that no longer matter are left in it and skipped
// by whoever pops them.
type dueQueue[T any] struct {
	items []dueItem[T]
}

// dueItem is one item of a dueQueue and when it comes due.
type dueItem[T any] struct {
	due  time.Time
	item T
}

// push adds item, due at due.
func (q *dueQueue[T]) push(due time.Time, item T) {
	q.items = append(q.items, dueItem[T]{due: due, item: item})
}

// pop takes out the first item if it is due by now.
func (q *dueQueue[T]) pop(now time.Time) (T, bool) {
	if len(q.items) == 0 || now.Before(q.items[0].due) {
		var none T
		return none, false
	}
	first := q.items[0].item
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil // let the array go
	}
	return first, true
}

// next returns when the first item comes due (false when the queue is empty).
func (q *dueQueue[T]) next() (time.Time, bool) {
	if len(q.items) == 0 {
		return time.Time{}, false
	}
	return q.items[0].due, true
}

// len returns how many items the queue holds.
func (q *dueQueue[T]) len() int { return len(q.items) }

// clear empties the queue.
func (q *dueQueue[T]) clear() { q.items = nil }
