//go:build !linux

package main

import "net"

// peerUID is Linux's (SO_PEERCRED); elsewhere the socket's mode and its
// private directory are the only guard.
func peerUID(conn net.Conn) (int, bool) { return 0, false }
