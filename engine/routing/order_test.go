package routing

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCompareNames_NumbersInNamesCompareAsNumbers(t *testing.T) {
	names := []string{"worker10", "worker2", "w", "worker1", "worker02", "alpha", "worker", "worker1b", "worker1a", "b2", "b10x", "10", "9"}
	slices.SortFunc(names, CompareNames)
	require.Equal(t, []string{"9", "10", "alpha", "b2", "b10x", "w", "worker", "worker1", "worker1a", "worker1b", "worker2", "worker02", "worker10"}, names)
	for _, a := range names {
		for _, b := range names {
			c, r := CompareNames(a, b), CompareNames(b, a)
			require.Equal(t, -c, r, "%q %q", a, b)
			require.Equal(t, a == b, c == 0, "%q %q", a, b)
		}
	}
}
