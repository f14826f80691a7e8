package main

import (
	"runtime"
	"strconv"
)

// procsPerCPU is how many Go processors cairn runs per CPU Go would give it.
//
// A read that misses the block cache blocks its thread in pread, and the
// Go runtime takes the processor away from a thread blocked in a system
// call only after 20 µs to 10 ms. With a data set larger than memory most
// reads wait on the disk that way, and with one processor per CPU the
// CPUs sat partly idle while requests queued: at 10 million keys on two
// CPUs, a member used 1.0 of them for 5,500 random reads a second. With
// two processors per CPU it used 1.4 for 7,200–9,100, and p99 fell by
// about half (docs/scale.md, "GOMAXPROCS"). At 100,000 keys, all cached,
// it made no measurable difference.
const procsPerCPU = 2

// setProcs raises GOMAXPROCS to procsPerCPU times the runtime's default,
// unless the GOMAXPROCS environment variable chose a value, which stands.
// It returns the value in force.
func setProcs(lookupEnv func(string) (string, bool)) int {
	if v, ok := lookupEnv("GOMAXPROCS"); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return runtime.GOMAXPROCS(0)
		}
	}
	runtime.GOMAXPROCS(procsPerCPU * runtime.GOMAXPROCS(0))
	return runtime.GOMAXPROCS(0)
}
