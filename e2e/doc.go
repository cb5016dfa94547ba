// Package e2e holds the end-to-end tests of ancm: they build ancmd,
// ancmctl and a test app, run them on loopback with a temporary state dir,
// and drive them as an operator would. The package has no code of its own.
package e2e
