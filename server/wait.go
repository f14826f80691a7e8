package server

import (
	"container/heap"
	"sync"

	"google.golang.org/protobuf/proto"
)

// result is what the apply loop hands back to the proposer of a request.
type result struct {
	resp proto.Message
	err  error
	// done, when set, closes when the request's background work finished
	// (a physical compaction).
	done <-chan struct{}
}

// waiters connects proposers with the apply loop by request ID.
type waiters struct {
	mu sync.Mutex
	m  map[uint64]chan result
}

func (w *waiters) register(id uint64) <-chan result {
	c := make(chan result, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = map[uint64]chan result{}
	}
	w.m[id] = c
	w.mu.Unlock()
	return c
}

func (w *waiters) trigger(id uint64, r result) {
	w.mu.Lock()
	c, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		c <- r
	}
}

// registered reports whether a proposer waits for id's result.
func (w *waiters) registered(id uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.m[id]
	return ok
}

func (w *waiters) cancel(id uint64) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

// appliedWait lets readers wait until the apply loop passes an index.
type appliedWait struct {
	mu      sync.Mutex
	applied uint64
	q       indexHeap
}

type indexWaiter struct {
	index uint64
	c     chan struct{}
}

type indexHeap []indexWaiter

func (h indexHeap) Len() int           { return len(h) }
func (h indexHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h indexHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *indexHeap) Push(x any)        { *h = append(*h, x.(indexWaiter)) }
func (h *indexHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// wait returns a channel that closes once index has been applied.
func (a *appliedWait) wait(index uint64) <-chan struct{} {
	c := make(chan struct{})
	a.mu.Lock()
	defer a.mu.Unlock()
	if index <= a.applied {
		close(c)
		return c
	}
	heap.Push(&a.q, indexWaiter{index: index, c: c})
	return c
}

func (a *appliedWait) advance(index uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applied = index
	for len(a.q) > 0 && a.q[0].index <= index {
		close(heap.Pop(&a.q).(indexWaiter).c)
	}
}
