package table

import (
	"fmt"
	"math"
)

// Bytes formats a size with SI units, rounded to one decimal below 10 and
// to an integer above ("7 B", "20 kB", "2.1 GB"): go-humanize's Bytes, the
// form etcdctl and etcdutl print.
func Bytes(n uint64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	exp := math.Floor(math.Log(float64(n)) / math.Log(1000))
	v := math.Floor(float64(n)/math.Pow(1000, exp)*10+0.5) / 10
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[int(exp)])
	}
	return fmt.Sprintf("%.0f %s", v, units[int(exp)])
}
