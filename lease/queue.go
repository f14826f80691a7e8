package lease

import (
	"container/heap"
	"time"
)

// queue is a min-heap of (lease, time) with at most one entry per lease,
// updated in place, so it never holds more entries than there are leases.
type queue struct {
	items []*qitem
	index map[int64]*qitem
}

type qitem struct {
	id  int64
	at  time.Time
	pos int
}

func (q *queue) init() {
	q.items = nil
	q.index = make(map[int64]*qitem)
}

// set schedules id at at, replacing its previous entry.
func (q *queue) set(id int64, at time.Time) {
	if it, ok := q.index[id]; ok {
		it.at = at
		heap.Fix((*qheap)(q), it.pos)
		return
	}
	it := &qitem{id: id, at: at}
	q.index[id] = it
	heap.Push((*qheap)(q), it)
}

// setIfEarlier schedules id at at unless it is already scheduled no later.
func (q *queue) setIfEarlier(id int64, at time.Time) {
	if it, ok := q.index[id]; ok && !at.Before(it.at) {
		return
	}
	q.set(id, at)
}

func (q *queue) remove(id int64) {
	if it, ok := q.index[id]; ok {
		heap.Remove((*qheap)(q), it.pos)
		delete(q.index, id)
	}
}

// peek returns the earliest entry.
func (q *queue) peek() (id int64, at time.Time, ok bool) {
	if len(q.items) == 0 {
		return 0, time.Time{}, false
	}
	return q.items[0].id, q.items[0].at, true
}

type qheap queue

func (h *qheap) Len() int           { return len(h.items) }
func (h *qheap) Less(i, j int) bool { return h.items[i].at.Before(h.items[j].at) }
func (h *qheap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].pos, h.items[j].pos = i, j
}
func (h *qheap) Push(x any) {
	it := x.(*qitem)
	it.pos = len(h.items)
	h.items = append(h.items, it)
}
func (h *qheap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items[len(h.items)-1] = nil
	h.items = h.items[:len(h.items)-1]
	return it
}
