package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestUsage_ListsEveryFlag(t *testing.T) {
	var help bool
	fs := newFlagSet(&config{}, &help)
	fs.VisitAll(func(f *pflag.Flag) {
		long := "--" + f.Name
		if f.Shorthand != "" {
			long = "-" + f.Shorthand + ", " + long
		}
		if !strings.Contains(usage, long+" ") {
			t.Errorf("usage does not document %q", long)
		}
	})
}
