// Package pemfile reads PEM certificate files into certificate pools: the
// one reader behind every CA file of ancm (the https listener's
// client_ca_file, an ACME CA's ca_root_file, the control API's mutual TLS
// on both ends).
package pemfile

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CertPool reads the PEM certificates of path into a new pool. A file
// that cannot be read, or that holds no PEM certificate, is an error
// naming it.
func CertPool(path string) (*x509.CertPool, error) {
	return AppendTo(x509.NewCertPool(), path)
}

// AppendTo adds the PEM certificates of path to pool, as CertPool reads
// them, and returns pool.
func AppendTo(pool *x509.CertPool, path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}
