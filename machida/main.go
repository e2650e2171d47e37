//go:build py2

// Command machida runs a Wallaroo 0.6 Python application on Python 2.7.
// It is machida3's program built with the py2 tag (make machida).
package main

import (
	"os"

	"github.com/wallaroo-go/machida/host"
)

func main() { os.Exit(host.Main(os.Args, "machida")) }
