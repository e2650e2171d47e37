package routing

import (
	"cmp"
	"strings"
)

// CompareNames orders worker names the way people number them: runs of
// digits compare as numbers ("worker2" before "worker10"), the rest
// byte by byte; equal numbers written with more leading zeros come
// later, so that only equal names compare equal. The cluster lists the
// workers after the initializer in this order, both those that form it
// and those that join together, so that the partitions each one gets do
// not depend on which of workers started together registered first (0.6
// listed them as they registered, which for workers started 50 ms apart
// by its tools was the order of their names).
func CompareNames(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return cmp.Compare(len(na), len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			if da != db {
				return cmp.Compare(da, db)
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

// digitRun is the length of the run of ASCII digits s starts with.
func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
