//go:build !py2

package bridge

// #cgo pkg-config: python3-embed
import "C"
