// Package pyapi embeds the Python package wallaroo (the directory beside
// this file) so the machida binaries can run applications with no install.
// The same files are pip-installable from this directory.
package pyapi

import "embed"

// Files holds wallaroo/ and wallaroo/experimental/ (Python sources only,
// tests excluded).
//
//go:embed wallaroo/*.py wallaroo/experimental/*.py
var Files embed.FS
