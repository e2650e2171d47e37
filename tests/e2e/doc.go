// Package e2e holds black-box end-to-end tests: they run the built
// binaries (machida3, sender, data_receiver) as real processes on loopback
// and compare what reaches the sinks with expected output. They import no
// package of this module.
//
// The binaries come from $WALLAROO_BIN (make test sets it to bin/); when
// it is unset, TestMain builds them into a temporary directory. Every test
// logs the commands it ran, so a failure can be replayed by hand.
package e2e
