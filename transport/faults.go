package transport

import "sync"

// Direction selects which traffic a fault affects, as seen by the member
// whose Config holds the Faults.
type Direction uint8

const (
	// Outbound is traffic this member sends to the peer.
	Outbound Direction = 1 << iota
	// Inbound is traffic this member receives from the peer.
	Inbound
	// Both is Outbound and Inbound.
	Both = Outbound | Inbound
)

// Faults cuts and pauses the links of one Transport, for tests. The zero
// value injects nothing and is ready to use; share it by pointer through
// Config.Faults and change it at any time. Nothing is random: a fault takes
// effect for every message handed to Send, and every delivery to the
// Receiver, that starts after the call returns. (A delivery already inside
// Receiver.Process, or a batch already being written, completes.)
//
// Cut drops traffic as a broken link would, but at once instead of after a
// timeout. Outbound: Send drops the peer's messages (counted as send
// failures, reported unreachable), SendSnapshot to it fails, and its stream
// is closed and not reopened until healed, so ActiveSince reports it
// inactive. Inbound: messages and snapshots from the peer are dropped and
// its streams are closed at their next frame and refused until healed.
// Cutting Both on one member partitions it from the peer in both
// directions; cutting Outbound on each side does too.
//
// Pause holds traffic as a stalled link would. Outbound: nothing more is
// written to the peer (not even pings); its messages wait in its queue
// (beyond QueueSize, Send drops and reports them). Inbound: messages from
// the peer are received but not delivered; they wait in the stream's
// receive queue (beyond RecvQueueSize they are dropped), and snapshots wait
// before ReceiveSnapshot. A paused stream is not torn down by PongTimeout.
// On Heal the held messages flow again, in order.
type Faults struct {
	mu      sync.Mutex
	cut     map[uint64]Direction
	paused  map[uint64]Direction
	changed chan struct{} // closed and replaced on every change
}

// Cut drops traffic in direction d between this member and each peer.
func (f *Faults) Cut(d Direction, peers ...uint64) { f.set(&f.cut, d, peers) }

// Pause holds traffic in direction d between this member and each peer.
func (f *Faults) Pause(d Direction, peers ...uint64) { f.set(&f.paused, d, peers) }

// Heal removes every cut and pause on the given peers, or on all peers when
// none are given.
func (f *Faults) Heal(peers ...uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(peers) == 0 {
		f.cut, f.paused = nil, nil
	}
	for _, id := range peers {
		delete(f.cut, id)
		delete(f.paused, id)
	}
	f.notifyLocked()
}

func (f *Faults) set(m *map[uint64]Direction, d Direction, peers []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *m == nil {
		*m = map[uint64]Direction{}
	}
	for _, id := range peers {
		(*m)[id] |= d
	}
	f.notifyLocked()
}

func (f *Faults) notifyLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// isCut reports whether traffic in direction d with peer id is cut. Safe on
// a nil Faults.
func (f *Faults) isCut(id uint64, d Direction) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[id]&d != 0
}

// isPaused reports whether traffic in direction d with peer id is paused.
// Safe on a nil Faults.
func (f *Faults) isPaused(id uint64, d Direction) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused[id]&d != 0
}

// blocked reports whether traffic in direction d with peer id is cut or
// paused, under one lock. Safe on a nil Faults.
func (f *Faults) blocked(id uint64, d Direction) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return (f.cut[id]|f.paused[id])&d != 0
}

// watch returns a channel closed at the next change; nil (never ready) on a
// nil Faults. Take it before checking the state it guards.
func (f *Faults) watch() <-chan struct{} {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}
