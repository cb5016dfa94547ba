// Package client dials the ancm control API: it parses control addresses
// ("unix:///path", "tcp://host:port"), finds the socket of a daemon started
// with default settings, and sets up TLS with client certificates. It is
// shared by ancmctl and by a data plane running apart from its control plane.
// It holds no API logic of its own; the generated stubs in api/gen are used
// as they are.
package client
