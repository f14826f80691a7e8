package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// framesOf feeds frames to a streamReader, then ends with end.
func framesOf(frames []frame, end error) func() (frame, error) {
	return func() (frame, error) {
		if len(frames) == 0 {
			return nil, end
		}
		f := frames[0]
		frames = frames[1:]
		return f, nil
	}
}

func noControl(f frame) (bool, error) {
	return false, fmt.Errorf("%w: unexpected %s", errProtocol, f.kind())
}

func bigEntryMsg(index uint64, size int) *raftpb.Message {
	m := msg(raftpb.MsgApp, 1, 2, index)
	data := bytes.Repeat([]byte{byte(index)}, size)
	m.Entries = []*raftpb.Entry{{Index: proto.Uint64(index + 1), Term: proto.Uint64(7), Data: data}}
	return m
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		frameSize int
		msgs      []*raftpb.Message
		frames    int // expected frame count
	}{
		{"one small", 1 << 20, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)}, 1},
		{"empty message", 1 << 20, []*raftpb.Message{{}}, 1},
		{"many share a frame", 1 << 20, func() (ms []*raftpb.Message) {
			for i := range 100 {
				ms = append(ms, msg(raftpb.MsgApp, 1, 2, uint64(i)))
			}
			return ms
		}(), 1},
		{"one spans frames", 1024, []*raftpb.Message{bigEntryMsg(1, 5000)}, 5},
		{"mixed across frames", 100, []*raftpb.Message{
			msg(raftpb.MsgVote, 1, 2, 1), bigEntryMsg(2, 250), msg(raftpb.MsgHeartbeat, 1, 2, 3), bigEntryMsg(4, 99),
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := &encoder{frameSize: tc.frameSize}
			frames, err := enc.encode(tc.msgs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.frames != 0 && len(frames) != tc.frames {
				t.Errorf("got %d frames, want %d", len(frames), tc.frames)
			}
			for _, f := range frames {
				if f.kind() != kindData || len(f.payload()) > tc.frameSize || len(f.payload()) == 0 {
					t.Fatalf("bad frame: kind %s, %d bytes", f.kind(), len(f.payload()))
				}
			}
			// Interleave pings, as a live stream does.
			var withPings []frame
			for _, f := range frames {
				withPings = append(withPings, pingFrame(1), f)
			}
			pings := 0
			rr := &recordReader{max: 1 << 20, r: &streamReader{
				recv: framesOf(withPings, io.EOF),
				control: func(f frame) (bool, error) {
					if f.kind() != kindPing {
						return false, errProtocol
					}
					pings++
					return false, nil
				},
			}}
			for i, want := range tc.msgs {
				got, err := rr.next()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !proto.Equal(got, want) {
					t.Fatalf("message %d: got %v, want %v", i, got, want)
				}
			}
			if _, err := rr.next(); err != io.EOF {
				t.Fatalf("after the last message: got %v, want io.EOF", err)
			}
			if pings != len(frames) {
				t.Errorf("control saw %d pings, want %d", pings, len(frames))
			}
		})
	}
}

func TestRecordReaderErrors(t *testing.T) {
	good, _ := (&encoder{frameSize: 1 << 20}).encode([]*raftpb.Message{bigEntryMsg(1, 100)}, nil)
	streamErr := errors.New("stream broke")
	for _, tc := range []struct {
		name   string
		frames []frame
		end    error
		max    int
		want   error
	}{
		{"too large", good, io.EOF, 10, ErrMessageTooLarge},
		{"truncated record", []frame{good[0][:20]}, io.EOF, 1 << 20, errProtocol},
		{"truncated length", []frame{newFrame(kindData, []byte{0x80})}, io.EOF, 1 << 20, errProtocol},
		{"varint overflow", []frame{newFrame(kindData, bytes.Repeat([]byte{0xff}, 11))}, io.EOF, 1 << 20, errProtocol},
		{"garbage message", []frame{newFrame(kindData, []byte{3, 0xff, 0xff, 0xff})}, io.EOF, 1 << 20, errProtocol},
		{"stream error mid-record", []frame{good[0][:20]}, streamErr, 1 << 20, streamErr},
		{"stream error between records", nil, streamErr, 1 << 20, streamErr},
		{"unexpected control frame", []frame{{byte(kindResult), 0}}, io.EOF, 1 << 20, errProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr := &recordReader{max: tc.max, r: &streamReader{recv: framesOf(tc.frames, tc.end), control: noControl}}
			if _, err := rr.next(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSnapshotBodyVerifies(t *testing.T) {
	body := []byte("the state machine, all of it")
	crc := crc32.Checksum(body, castagnoli)
	for _, tc := range []struct {
		name   string
		frames []frame
		end    error
		want   error
	}{
		{"intact", []frame{newFrame(kindData, body[:10]), newFrame(kindData, body[10:]), endFrame(uint64(len(body)), crc)}, io.EOF, io.EOF},
		{"bad crc", []frame{newFrame(kindData, body), endFrame(uint64(len(body)), crc+1)}, io.EOF, ErrSnapshotCorrupt},
		{"bad length", []frame{newFrame(kindData, body), endFrame(uint64(len(body))+1, crc)}, io.EOF, ErrSnapshotCorrupt},
		{"no end frame", []frame{newFrame(kindData, body)}, io.EOF, ErrSnapshotTruncated},
		{"stream broke", []frame{newFrame(kindData, body)}, errors.New("reset"), ErrSnapshotTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &snapshotBody{crc: crc32.New(castagnoli)}
			b.r = &streamReader{recv: framesOf(tc.frames, tc.end), control: func(f frame) (bool, error) {
				b.wantLen, b.wantCRC = binary.BigEndian.Uint64(f[1:]), binary.BigEndian.Uint32(f[9:])
				return true, nil
			}}
			got, err := io.ReadAll(b)
			if tc.want == io.EOF {
				if err != nil || !bytes.Equal(got, body) || !b.complete {
					t.Fatalf("got %q, %v, complete=%v", got, err, b.complete)
				}
				return
			}
			if !errors.Is(err, tc.want) || b.complete {
				t.Fatalf("got %v (complete=%v), want %v", err, b.complete, tc.want)
			}
			if _, again := b.Read(make([]byte, 1)); !errors.Is(again, tc.want) {
				t.Fatalf("error not sticky: %v", again)
			}
		})
	}
}

func TestRejectionRoundTrip(t *testing.T) {
	r := rejection{reason: rejectClusterMismatch, clusterID: 0xdead, memberID: 0xbeef, detail: "sender is in cluster 1"}
	f := r.frame()
	if f.kind() != kindReject {
		t.Fatalf("kind %s", f.kind())
	}
	got, err := parseRejection(f.payload())
	if err != nil || got != r {
		t.Fatalf("got %+v, %v; want %+v", got, err, r)
	}
	if _, err := parseRejection(f.payload()[:5]); !errors.Is(err, errProtocol) {
		t.Fatalf("short reject frame: %v", err)
	}
}

func TestCodec(t *testing.T) {
	c := codec{}
	out, err := c.Marshal(pingFrame(42))
	if err != nil {
		t.Fatal(err)
	}
	var f frame
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(out.Materialize())}, &f); err != nil {
		t.Fatal(err)
	}
	if f.kind() != kindPing || binary.BigEndian.Uint64(f.payload()) != 42 {
		t.Fatalf("got %v", f)
	}
	if _, err := c.Marshal(&raftpb.Message{}); err == nil {
		t.Fatal("marshalled a non-frame")
	}
	if err := c.Unmarshal(mem.BufferSlice{}, &f); err == nil {
		t.Fatal("unmarshalled an empty frame")
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := Config{ID: 1, ClusterID: 2, Receiver: newRecorder()}
		c.EnsureDefaults()
		return c
	}
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.QueueSize != 4096 || c.FrameSize != 1<<20 || c.PongTimeout <= c.PingInterval {
		t.Fatalf("unexpected defaults %+v", c)
	}
	for name, mod := range map[string]func(*Config){
		"no ID":          func(c *Config) { c.ID = 0 },
		"no cluster":     func(c *Config) { c.ClusterID = 0 },
		"no receiver":    func(c *Config) { c.Receiver = nil },
		"huge frames":    func(c *Config) { c.FrameSize = 8 << 20 },
		"tiny frames":    func(c *Config) { c.FrameSize = 8 },
		"negative queue": func(c *Config) { c.QueueSize = -1 },
		"backoff order":  func(c *Config) { c.BackoffMax = c.BackoffMin / 2 },
		"pong <= ping":   func(c *Config) { c.PongTimeout = c.PingInterval },
	} {
		c := valid()
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestFaultsZeroValue(t *testing.T) {
	var nilFaults *Faults
	if nilFaults.isCut(1, Both) || nilFaults.isPaused(1, Both) || nilFaults.watch() != nil {
		t.Fatal("a nil Faults must inject nothing")
	}
	f := new(Faults)
	w := f.watch()
	f.Cut(Outbound, 2)
	select {
	case <-w:
	default:
		t.Fatal("Cut did not signal a change")
	}
	if !f.isCut(2, Outbound) || f.isCut(2, Inbound) || f.isCut(3, Outbound) {
		t.Fatal("Cut(Outbound, 2) misapplied")
	}
	f.Pause(Inbound, 3)
	if !f.isPaused(3, Inbound) || f.isPaused(3, Outbound) {
		t.Fatal("Pause(Inbound, 3) misapplied")
	}
	f.Heal(2)
	if f.isCut(2, Both) || !f.isPaused(3, Inbound) {
		t.Fatal("Heal(2) must heal 2 only")
	}
	f.Heal()
	if f.isPaused(3, Both) {
		t.Fatal("Heal() must heal everything")
	}
}

// FuzzRecordReader checks that no byte sequence, cut into frames anyhow,
// makes the decoder panic or return a message from a record it did not
// fully read.
func FuzzRecordReader(f *testing.F) {
	seed, _ := (&encoder{frameSize: 16}).encode([]*raftpb.Message{msg(raftpb.MsgApp, 1, 2, 3), bigEntryMsg(4, 40)}, nil)
	var all []byte
	for _, fr := range seed {
		all = append(all, fr.payload()...)
	}
	f.Add(all, uint8(16))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, uint8(3))
	f.Add([]byte{5, 1, 2}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		size := int(cut%64) + 1
		var frames []frame
		for off := 0; off < len(data); off += size {
			frames = append(frames, newFrame(kindData, data[off:min(off+size, len(data))]))
		}
		rr := &recordReader{max: 1 << 16, r: &streamReader{recv: framesOf(frames, io.EOF), control: noControl}}
		for range 1000 {
			m, err := rr.next()
			if err != nil {
				return
			}
			if _, err := proto.Marshal(m); err != nil {
				t.Fatalf("decoded a message that does not marshal: %v", err)
			}
		}
	})
}
