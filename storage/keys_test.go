package storage

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestEscapedRoundTrip(t *testing.T) {
	for _, s := range []string{"", "a", "\x00", "\x00\x00", "a\x00b", "\xff", "\x00\xff", "abc\xff\x00\x01", "\x01"} {
		enc := AppendEscaped([]byte("p"), []byte(s))
		if got := EscapedLen([]byte(s)); got != len(enc)-1 {
			t.Errorf("EscapedLen(%q) = %d, want %d", s, got, len(enc)-1)
		}
		enc = append(enc, "tail"...)
		dec, rest, err := DecodeEscaped(enc[1:])
		if err != nil || string(dec) != s || string(rest) != "tail" {
			t.Errorf("DecodeEscaped(%q) = %q, %q, %v", s, dec, rest, err)
		}
	}
}

func TestDecodeEscapedCorrupt(t *testing.T) {
	for _, b := range []string{"", "a", "a\x00", "a\x00\x02", "\x00\xffb", "\x00\xff\x00"} {
		if _, _, err := DecodeEscaped([]byte(b)); err == nil {
			t.Errorf("DecodeEscaped(%q) succeeded", b)
		}
	}
}

// TestEscapedOrder checks on random strings over a small alphabet rich in
// 0x00 and 0xFF that encodings (followed by an arbitrary suffix) sort like
// the strings, and that the bound of b separates strings < b from ≥ b.
func TestEscapedOrder(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	alphabet := []byte{0x00, 0x01, 0x02, 'a', 0xFE, 0xFF}
	gen := func() []byte {
		b := make([]byte, rng.IntN(5))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return b
	}
	suffix := func() []byte {
		s := make([]byte, 16)
		for i := range s {
			s[i] = byte(rng.IntN(256))
		}
		return s
	}
	for range 20000 {
		a, b := gen(), gen()
		ea := append(AppendEscaped(nil, a), suffix()...)
		eb := append(AppendEscaped(nil, b), suffix()...)
		want := bytes.Compare(a, b)
		if got := bytes.Compare(ea, eb); want != 0 && got != want {
			t.Fatalf("order of %q vs %q: encoded %d, want %d", a, b, got, want)
		}
		bound := AppendEscapedBound(nil, b)
		if got := bytes.Compare(ea, bound) >= 0; got != (want >= 0) {
			t.Fatalf("bound of %q vs encoding of %q: ≥ is %v, want %v", b, a, got, want >= 0)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"k", "l"}, {"a\xff", "b"}, {"a\x00\x01", "a\x00\x02"}, {"\xff\xff", ""}, {"", ""},
	} {
		if got := PrefixEnd([]byte(tc.in)); string(got) != tc.want {
			t.Errorf("PrefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzDecodeEscaped(f *testing.F) {
	f.Add([]byte("a\x00\x01"))
	f.Add([]byte("a\x00\xff\x00\x01rest"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, rest, err := DecodeEscaped(b)
		if err != nil {
			return
		}
		enc := AppendEscaped(nil, s)
		if !bytes.Equal(append(enc, rest...), b) {
			t.Fatalf("re-encoding %q gave %q", b, append(enc, rest...))
		}
	})
}
