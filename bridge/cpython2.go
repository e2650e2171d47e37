//go:build py2

package bridge

// #cgo pkg-config: python-2.7
import "C"
