package table

import "testing"

func TestBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0:          "0 B",
		9:          "9 B",
		10:         "10 B",
		999:        "999 B",
		1000:       "1.0 kB",
		9950:       "10 kB",
		16384:      "16 kB",
		20480:      "20 kB",
		1500000:    "1.5 MB",
		2147483648: "2.1 GB",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
