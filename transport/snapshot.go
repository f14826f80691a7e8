package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errSnapshotStalled  = errors.New("transport: snapshot send made no progress")
	errSnapshotInflight = errors.New("transport: another snapshot to this peer is in flight")
	errCut              = errors.New("transport: link cut by fault injection")
)

// sendSnapshot runs on its own goroutine: it streams m and body to the peer
// and reports the outcome to raft.
func (p *peer) sendSnapshot(m *raftpb.Message, body io.ReadCloser) {
	closeBody := sync.OnceFunc(func() { body.Close() })
	defer closeBody()
	if !p.snapInflight.CompareAndSwap(false, true) {
		p.lg.Warn("snapshot send failed", zap.Error(errSnapshotInflight))
		p.t.m.snapSendFailures.WithLabelValues(p.label).Inc()
		p.t.reportSnapshot(p.id, false)
		return
	}
	defer p.snapInflight.Store(false)

	inflight := p.t.m.snapSendInflight.WithLabelValues(p.label)
	inflight.Inc()
	start := time.Now()
	index := m.GetSnapshot().GetMetadata().GetIndex()
	p.lg.Info("sending snapshot", zap.Uint64("index", index))
	n, err := p.streamSnapshot(m, body, closeBody)
	inflight.Dec()
	took := time.Since(start)
	if err != nil {
		p.t.m.snapSendFailures.WithLabelValues(p.label).Inc()
		p.lg.Warn("snapshot send failed", zap.Uint64("index", index), zap.Uint64("body-bytes", n), zap.Duration("took", took), zap.Error(err))
	} else {
		p.t.m.snapSend.WithLabelValues(p.label).Inc()
		p.t.m.snapSendSeconds.WithLabelValues(p.label).Observe(took.Seconds())
		p.lg.Info("sent snapshot", zap.Uint64("index", index), zap.Uint64("body-bytes", n), zap.Duration("took", took))
	}
	p.t.reportSnapshot(p.id, err == nil)
}

// streamSnapshot writes the MsgSnap record, the body in frames of at most
// FrameSize bytes, and an end frame with the body's length and CRC, then
// waits for the receiver's verdict. It returns the body bytes sent.
func (p *peer) streamSnapshot(m *raftpb.Message, body io.Reader, closeBody func()) (uint64, error) {
	if p.t.faults.isCut(p.id, Outbound) {
		return 0, errCut
	}
	ctx, cancel := context.WithCancelCause(p.ctx)
	defer cancel(nil)
	// A Read blocked on a pipe ends when the peer is removed or the
	// transport closes.
	defer context.AfterFunc(ctx, closeBody)()
	stall := p.t.cfg.SnapshotStallTimeout
	watchdog := time.AfterFunc(stall, func() { cancel(errSnapshotStalled) })
	defer watchdog.Stop()

	conn, err := p.t.dial(p.currentURL())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	cs, err := conn.NewStream(p.t.outgoing(ctx, p.id), snapshotDesc, methodSnapshot, grpc.ForceCodecV2(codec{}))
	if err != nil {
		return 0, causeOr(ctx, err)
	}
	send := func(f frame) error {
		if err := cs.SendMsg(f); err != nil {
			return err
		}
		watchdog.Reset(stall)
		p.sentBytes.Add(float64(len(f)))
		return nil
	}
	head, err := (&encoder{frameSize: p.t.cfg.FrameSize}).encode([]*raftpb.Message{m}, nil)
	if err != nil {
		return 0, err
	}
	var n uint64
	crc := crc32.New(castagnoli)
	sendErr := func() error {
		for _, f := range head {
			if err := send(f); err != nil {
				return err
			}
		}
		for {
			// A fresh frame per chunk: gRPC may still hold the last one.
			f := make(frame, 1+p.t.cfg.FrameSize)
			f[0] = byte(kindData)
			k, rerr := io.ReadFull(body, f[1:])
			if k > 0 {
				crc.Write(f[1 : 1+k])
				n += uint64(k)
				if err := send(f[:1+k]); err != nil {
					return err
				}
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				break
			}
			if rerr != nil {
				// Abort the stream: the receiver's body read fails too.
				err := fmt.Errorf("transport: reading snapshot body: %w", rerr)
				cancel(err)
				return err
			}
		}
		if err := send(endFrame(n, crc.Sum32())); err != nil {
			return err
		}
		return cs.CloseSend()
	}()
	if sendErr != nil && ctx.Err() != nil {
		return n, causeOr(ctx, sendErr)
	}
	// Also after a failed SendMsg (the receiver ended the stream early):
	// the receiver's verdict or refusal says why.
	var f frame
	if err := cs.RecvMsg(&f); err != nil {
		if sendErr != nil {
			return n, sendErr
		}
		return n, causeOr(ctx, err)
	}
	switch {
	case f.kind() == kindReject:
		r, err := parseRejection(f.payload())
		if err != nil {
			return n, err
		}
		return n, &rejectedError{r}
	case f.kind() == kindResult && len(f) >= 2:
		if f[1] == 0 && sendErr == nil {
			return n, nil
		}
		return n, fmt.Errorf("transport: receiver failed the snapshot: %s", f[2:])
	}
	return n, fmt.Errorf("%w: unexpected %s frame on a snapshot stream", errProtocol, f.kind())
}

// serveSnapshot is the Snapshot handler: it decodes the MsgSnap, hands it
// with a streaming body to Receiver.ReceiveSnapshot, and sends the verdict.
func (t *Transport) serveSnapshot(ss grpc.ServerStream) error {
	from, ok := t.admit(ss)
	if !ok || t.faults.isCut(from, Inbound) {
		return nil
	}
	label := idLabel(from)
	lg := t.lg.With(zap.String("peer-id", label))
	inflight := t.m.snapRecvInflight.WithLabelValues(label)
	inflight.Inc()
	defer inflight.Dec()
	start := time.Now()
	ctx, cancel := t.streamContext(ss.Context())
	defer cancel()

	body := &snapshotBody{crc: crc32.New(castagnoli)}
	sr := &streamReader{
		recv: t.recvFunc(ss, from, t.m.receivedBytes.WithLabelValues(label)),
		control: func(f frame) (bool, error) {
			if f.kind() != kindEnd || len(f) != 13 {
				return false, fmt.Errorf("%w: unexpected %s frame on a snapshot stream", errProtocol, f.kind())
			}
			body.wantLen = binary.BigEndian.Uint64(f[1:])
			body.wantCRC = binary.BigEndian.Uint32(f[9:])
			return true, nil
		},
	}
	body.r = sr
	m, err := (&recordReader{r: sr, max: t.cfg.MaxMessageBytes}).next()
	if err == nil && (m.GetType() != raftpb.MsgSnap || m.GetFrom() != from || m.GetTo() != t.cfg.ID) {
		err = fmt.Errorf("%w: snapshot stream from %x carries %s from %x to %x",
			errProtocol, from, m.GetType(), m.GetFrom(), m.GetTo())
	}
	if err == nil {
		err = t.waitInbound(ctx, from)
	}
	if err == nil {
		lg.Info("receiving snapshot", zap.Uint64("index", m.GetSnapshot().GetMetadata().GetIndex()))
		err = t.cfg.Receiver.ReceiveSnapshot(ctx, m, body)
		if err == nil && !body.complete {
			err = errors.New("transport: receiver returned before reading the whole snapshot body")
		}
	}
	took := time.Since(start)
	if err != nil {
		t.m.snapRecvFailures.WithLabelValues(label).Inc()
		lg.Warn("receiving snapshot failed", zap.Uint64("body-bytes", body.n), zap.Duration("took", took), zap.Error(err))
	} else {
		t.m.snapRecv.WithLabelValues(label).Inc()
		t.m.snapRecvSeconds.WithLabelValues(label).Observe(took.Seconds())
		lg.Info("received snapshot", zap.Uint64("index", m.GetSnapshot().GetMetadata().GetIndex()),
			zap.Uint64("body-bytes", body.n), zap.Duration("took", took))
	}
	return ss.SendMsg(resultFrame(err))
}

// waitInbound waits while inbound traffic from the peer is paused; it fails
// if it is cut.
func (t *Transport) waitInbound(ctx context.Context, from uint64) error {
	for {
		changed := t.faults.watch()
		if t.faults.isCut(from, Inbound) {
			return errCut
		}
		if !t.faults.isPaused(from, Inbound) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// snapshotBody is the io.Reader handed to ReceiveSnapshot: the body bytes,
// verified against the sender's end frame before io.EOF.
type snapshotBody struct {
	r        *streamReader
	crc      hash.Hash32
	n        uint64
	wantLen  uint64
	wantCRC  uint32
	complete bool  // io.EOF was returned
	err      error // sticky
}

func (b *snapshotBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	b.crc.Write(p[:n])
	b.n += uint64(n)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF && b.r.ended:
		if b.n != b.wantLen || b.crc.Sum32() != b.wantCRC {
			b.err = fmt.Errorf("%w: got %d bytes with CRC %08x, sender sent %d with CRC %08x",
				ErrSnapshotCorrupt, b.n, b.crc.Sum32(), b.wantLen, b.wantCRC)
		} else {
			b.err, b.complete = io.EOF, true
		}
	case err == io.EOF:
		b.err = fmt.Errorf("%w: stream ended after %d bytes", ErrSnapshotTruncated, b.n)
	default:
		b.err = fmt.Errorf("%w after %d bytes: %w", ErrSnapshotTruncated, b.n, err)
	}
	return n, b.err
}
