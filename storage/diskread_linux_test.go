package storage

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkDiskRead measures what one random block read from disk costs
// this machine, in CPU and wall time, outside Cairn: the floor under a
// read at a size whose values the block cache cannot hold (docs/scale.md,
// "Run S"). It reads 8 KiB at random aligned offsets of the sstables
// under $CAIRN_DISKREAD_DIR (a loaded data dir), opened as Pebble opens
// them (FADV_RANDOM: no readahead), and again with O_DIRECT (no page
// cache). Skipped without the variable:
//
//	CAIRN_DISKREAD_DIR=/path/to/data go test ./storage -run - -bench DiskRead -benchtime 20000x
func BenchmarkDiskRead(b *testing.B) {
	dir := os.Getenv("CAIRN_DISKREAD_DIR")
	if dir == "" {
		b.Skip("set CAIRN_DISKREAD_DIR to a data dir with sstables")
	}
	var names []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && filepath.Ext(path) == ".sst" {
			names = append(names, path)
		}
		return nil
	})
	for _, mode := range []struct {
		name  string
		flags int
	}{{"buffered", 0}, {"direct", unix.O_DIRECT}} {
		b.Run(mode.name, func(b *testing.B) {
			type file struct {
				fd   int
				size int64
			}
			var files []file
			for _, name := range names {
				fd, err := unix.Open(name, unix.O_RDONLY|mode.flags, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer unix.Close(fd)
				var st unix.Stat_t
				if err := unix.Fstat(fd, &st); err != nil {
					b.Fatal(err)
				}
				if st.Size < 1<<20 {
					continue
				}
				if err := unix.Fadvise(fd, 0, 0, unix.FADV_RANDOM); err != nil {
					b.Fatal(err)
				}
				files = append(files, file{fd, st.Size})
			}
			if len(files) == 0 {
				b.Fatalf("no sstable of 1 MiB or more under %s", dir)
			}
			const block = 8 << 10
			// O_DIRECT needs a buffer aligned to the logical block size.
			buf, err := unix.Mmap(-1, 0, block, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
			if err != nil {
				b.Fatal(err)
			}
			defer unix.Munmap(buf)
			cpu0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				f := files[rand.IntN(len(files))]
				if _, err := unix.Pread(f.fd, buf, rand.Int64N(f.size-block)&^4095); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/read")
		})
	}
}

// cpuTime is the user and system CPU the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
