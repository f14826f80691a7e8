package watch

import "go.etcd.io/etcd/api/v3/mvccpb"

// watcherSet indexes synced watchers: single-key watchers by key, so an
// event costs one map lookup for them; range watchers are checked one by
// one.
type watcherSet struct {
	keys   map[string]map[*watcher]struct{}
	ranges map[*watcher]struct{}
	n      int
}

func newWatcherSet() watcherSet {
	return watcherSet{keys: map[string]map[*watcher]struct{}{}, ranges: map[*watcher]struct{}{}}
}

func (s *watcherSet) len() int { return s.n }

func (s *watcherSet) add(w *watcher) {
	if w.end != nil {
		s.ranges[w] = struct{}{}
	} else {
		m := s.keys[string(w.key)]
		if m == nil {
			m = map[*watcher]struct{}{}
			s.keys[string(w.key)] = m
		}
		m[w] = struct{}{}
	}
	s.n++
}

func (s *watcherSet) has(w *watcher) bool {
	if w.end != nil {
		_, ok := s.ranges[w]
		return ok
	}
	_, ok := s.keys[string(w.key)][w]
	return ok
}

func (s *watcherSet) remove(w *watcher) {
	if !s.has(w) {
		return
	}
	if w.end != nil {
		delete(s.ranges, w)
	} else {
		m := s.keys[string(w.key)]
		delete(m, w)
		if len(m) == 0 {
			delete(s.keys, string(w.key))
		}
	}
	s.n--
}

// match calls fn once for every watcher that wants some of evs, with the
// events it wants in order; the slice may be evs itself, shared by every
// such watcher, so fn must not modify it. fn may remove the watcher.
func (s *watcherSet) match(evs []*mvccpb.Event, fn func(*watcher, []*mvccpb.Event)) {
	if len(evs) == 1 {
		// The common revision, one put or delete: every watcher that
		// wants it shares evs, with no bookkeeping to allocate.
		ev := evs[0]
		for w := range s.keys[string(ev.Kv.Key)] {
			if w.wants(ev) {
				fn(w, evs)
			}
		}
		for w := range s.ranges {
			if w.wants(ev) {
				fn(w, evs)
			}
		}
		return
	}
	var per map[*watcher][]*mvccpb.Event
	var order []*watcher
	add := func(w *watcher, ev *mvccpb.Event) {
		if per == nil {
			per = map[*watcher][]*mvccpb.Event{}
		}
		if _, seen := per[w]; !seen {
			order = append(order, w)
		}
		per[w] = append(per[w], ev)
	}
	for _, ev := range evs {
		for w := range s.keys[string(ev.Kv.Key)] {
			if w.wants(ev) {
				add(w, ev)
			}
		}
		for w := range s.ranges {
			if w.wants(ev) {
				add(w, ev)
			}
		}
	}
	for _, w := range order {
		fn(w, per[w])
	}
}
