// Package transport carries raft messages and snapshots between the members
// of a cluster, over gRPC (HTTP/2) streams on the peer port.
//
// # Mental model
//
// A Transport is one member's end of a full mesh of one-way links. For each
// peer there is a bounded queue and one goroutine that owns a long-lived
// outgoing stream to the peer: Send only puts messages in queues, and each
// peer's goroutine drains its queue into its stream in batches. Incoming
// streams are served by the gRPC server the caller runs on the peer
// listener; each one decodes messages in order and hands them to the local
// raft node through the Receiver. A snapshot travels on a stream of its own,
// body streamed in chunks, so a multi-gigabyte transfer never delays
// heartbeats nor sits in memory.
//
// Loss is normal. Raft retransmits whatever matters, so the transport never
// blocks or buffers without bound to avoid losing a message: it drops it,
// counts it, and tells raft the peer is unreachable, which sends raft back to
// probing that follower. A slow, dead, or partitioned peer costs the leader
// at most one queue of messages, never a blocked Ready loop.
//
// # Contract
//
//   - Send never blocks. Messages to one peer are written in Send order on
//     one stream, so they arrive in order unless dropped. A message is
//     dropped when its peer's queue (Config.QueueSize) is full, while the
//     peer is unreachable (the stream broke and is backing off), or when its
//     link is cut by Faults; each drop counts in
//     etcd_network_peer_sent_failures_total and marks the peer unreachable.
//     Messages handed to Send belong to the transport.
//   - ReportUnreachable is called, coalesced, on one goroutine, after drops
//     and after a stream that may have lost messages breaks. ReportSnapshot
//     is called once per SendSnapshot. Neither is ever called from inside a
//     Transport method, so the raft loop can call Send and SendSnapshot
//     while it is the one those reports must reach.
//   - Receiver.Process gets each peer's messages in order, on one goroutine
//     per inbound stream. Messages arriving faster than it takes them wait
//     in a bounded queue (Config.RecvQueueSize) and beyond it are dropped,
//     so a slow raft loop never stalls the stream, nor through it the
//     sender. A Receiver that is also a TryProcessor is handed a message
//     directly on the stream's goroutine when nothing of that peer is
//     queued or being delivered, saving a goroutine hand-off per message.
//   - MsgSnap travels only through SendSnapshot (Send routes it there with an
//     empty body), on its own stream; it may overtake or be overtaken by
//     messages on the message stream, which raft tolerates. The receiver
//     gets the MsgSnap and an io.Reader for the body; the sender's raft
//     learns SnapshotFinish only after Receiver.ReceiveSnapshot returned
//     nil having read the body to io.EOF, which it reaches only if the
//     length and CRC-32C match what was sent. One snapshot per peer is in
//     flight at a time.
//   - Every stream opens with the cluster ID, the sender's and intended
//     recipient's member IDs and the protocol version in its gRPC metadata.
//     A member refuses, and says why in a reject frame, a stream from another
//     cluster, for another member, or from a member it does not know or
//     removed (RemovePeer); a removed member's live streams are refused at
//     their next frame, so it learns that it was removed. Both sides log a
//     refusal once per peer and reason (until a stream is accepted again),
//     naming both cluster IDs; the refused sender retries every BackoffMax.
//   - A stream that breaks is reopened after an exponential backoff
//     (BackoffMin to BackoffMax), trying the peer's URLs in turn, each time
//     on a fresh connection. Beside each stream a prober calls Ping on the
//     same connection every PingInterval; its round trip is the RTT metric.
//     Pings do not wait behind the stream's data (HTTP/2 connection windows
//     are replenished as the peer's gRPC reads, not as its raft consumes),
//     so a busy peer keeps answering while a hung peer or black-holed link
//     fails a ping within PongTimeout; the stream is then torn down, which
//     also frees a write stuck on flow control. ActiveSince says whether a
//     stream is up.
//   - Close cancels every outgoing stream and snapshot, stops calling the
//     Receiver, waits for all goroutines the transport started and
//     unregisters its metrics. Incoming streams run on the gRPC server's
//     handler goroutines, which the transport does not own: after Close they
//     deliver nothing and return at their next frame (an idle sender sends
//     an empty frame every PingInterval); stopping the gRPC server ends them
//     at once. Shut down with Close, then the server.
//
// # Server side
//
// Register adds the service to a *grpc.Server instead of returning an
// http.Handler: the peer port serves gRPC natively (internal/connmux can put
// HTTP/1.x endpoints beside it), with per-stream flow control from gRPC's own
// HTTP/2 server rather than the slower grpc.Server.ServeHTTP. A snapshot
// dials a connection of its own, so a long transfer does not share the
// message stream's connection window. The service is declared with a
// hand-written grpc.ServiceDesc and a codec of its own (no protoc); the
// codec registers itself with gRPC under the content-subtype
// "cairn-peer-v1", which selects it per call, so other services on the same
// server keep their codecs. The server's MaxRecvMsgSize must exceed
// Config.FrameSize (the 4 MiB default does). Peer URLs are
// http://host:port, dialed in plain TCP, or https://host:port, dialed with
// Config.TLS; the server side's TLS is the listener's (server.Listener).
//
// # Wire format
//
// Service "cairn.transport.v1.Peer": two bidirectional streaming methods,
// Messages and Snapshot, and a unary Ping. Every call carries this metadata
// (member and cluster IDs in lowercase hex):
//
//	cairn-peer-version  "1"
//	cairn-cluster-id    sender's cluster ID
//	cairn-from          sender's member ID
//	cairn-to            intended recipient's member ID
//
// Every gRPC message is one frame: a kind byte, then the payload.
//
//	1 data    client→server  the next bytes of the stream's byte sequence
//	2 ping    Ping request   8 opaque bytes
//	3 pong    Ping response  the ping's 8 bytes, echoed
//	4 accept  server→client  empty; the stream was admitted (Messages only)
//	5 reject  server→client  reason (1 byte), refuser's cluster ID and member
//	                         ID (uint64 BE each), UTF-8 detail; the stream ends
//	6 end     client→server  snapshot body length (uint64 BE), CRC-32C of the
//	                         body (Castagnoli, uint32 BE)
//	7 result  server→client  0 = snapshot received, 1 = failed, then detail
//
// Reject reasons: 1 bad request (metadata or version), 2 cluster ID
// mismatch, 3 wrong recipient, 4 unknown member, 5 removed member.
//
// The byte sequence of data frames is a series of records: a message's
// proto.Marshal length as a uvarint, then proto.Marshal(raftpb.Message).
// Records are cut into data frames of at most Config.FrameSize payload
// bytes, independently of record boundaries: many small messages share a
// frame, a large one spans several; an empty data frame is a keepalive,
// sent when the stream was idle for PingInterval. On a Messages stream the
// client sends only data frames; the server answers with accept and then
// nothing, or with reject (at open, or later when the sender is removed).
// On a Snapshot stream the client sends one record (the MsgSnap), then the
// body as the rest of the byte sequence, then an end frame, and
// half-closes; the server answers with one result frame, or reject. Ping
// answers a ping frame with a pong, or with a reject frame when it would
// refuse a stream from the caller.
package transport
