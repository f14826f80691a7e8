package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// newRangeRandomCommand is the range-random workload: single-key reads
// spread over a key space that put or txn-put wrote, so that a read has to
// find its key among all of them instead of in one hot cache line.
func newRangeRandomCommand(o *options) *cobra.Command {
	var (
		consistency  string
		keySize      int
		keySpaceSize uint64
	)
	cmd := &cobra.Command{
		Use:   "range-random",
		Short: "Benchmark Range of one key drawn at random from --key-space-size keys",
		Long: "range-random reads one key per request, drawn at random from the keys put and txn-put write " +
			"(key numbers 0 to --key-space-size-1, zero-padded to --key-size). A key that is not found counts " +
			"as a failed request, so a clean run also shows that every key read was there.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			serializable, err := parseConsistency(consistency)
			if err != nil {
				return err
			}
			k := keyOptions{keySize: keySize, keySpaceSize: keySpaceSize}
			if err := k.validate(1); err != nil {
				return err
			}
			return execute(cmd.Context(), o, newRangeRandomWorkload(keySize, keySpaceSize, serializable))
		},
	}
	f := cmd.Flags()
	f.StringVar(&consistency, "consistency", "l", "l (linearizable) or s (serializable)")
	f.IntVar(&keySize, "key-size", 8, "key size in bytes, as given to put or txn-put")
	f.Uint64Var(&keySpaceSize, "key-space-size", 1, "number of keys to draw from (key numbers 0 to N-1); every one must exist")
	return cmd
}

// rangeRandomWorkload gets one key drawn uniformly from [0, keySpaceSize).
type rangeRandomWorkload struct {
	keySize      int
	keySpaceSize uint64
	opts         []clientv3.OpOption
	desc         string
}

func newRangeRandomWorkload(keySize int, keySpaceSize uint64, serializable bool) *rangeRandomWorkload {
	w := &rangeRandomWorkload{keySize: keySize, keySpaceSize: keySpaceSize, desc: "range-random linearizable"}
	if serializable {
		w.opts = append(w.opts, clientv3.WithSerializable())
		w.desc = "range-random serializable"
	}
	return w
}

func (w *rangeRandomWorkload) name() string { return w.desc }

// key is the key request draws with r.
func (w *rangeRandomWorkload) key(r *rand.Rand) string {
	return formatKey(r.Uint64N(w.keySpaceSize), w.keySize)
}

func (w *rangeRandomWorkload) do(ctx context.Context, kv clientv3.KV, r *rand.Rand, _ uint64) error {
	key := w.key(r)
	resp, err := kv.Get(ctx, key, w.opts...)
	if err != nil {
		return err
	}
	if len(resp.Kvs) != 1 {
		return fmt.Errorf("key %q: %d keys returned, want 1", key, len(resp.Kvs))
	}
	return nil
}
