package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are PEM files under one throwaway CA: the CA's certificate, a
// server pair (SAN 127.0.0.1 and localhost) and a client pair. Keys are
// written mode 0600.
type TLSFiles struct {
	CA         string
	ServerCert string
	ServerKey  string
	ClientCert string
	ClientKey  string
}

// ClientCN is the common name of the client certificates NewTLSFiles
// makes. It is no etcd user, so that etcd's certificate-based login (the
// CN as user name, when auth is enabled) grants these clients nothing.
const ClientCN = "sockwarden-test-client"

// NewTLSFiles makes a fresh CA (ECDSA P-256, valid for a day) and a server
// and a client certificate signed by it, in dir. Two calls make two CAs
// that do not trust each other.
func NewTLSFiles(t testing.TB, dir string) TLSFiles {
	t.Helper()
	f, err := newTLSFiles(dir)
	if err != nil {
		t.Fatalf("etcdtest: TLS files: %v", err)
	}
	return f
}

// ClientTLS is a client configuration with the CA as root and the client
// pair: what an etcd client of a StartTLS server needs.
func (f TLSFiles) ClientTLS() (*tls.Config, error) {
	b, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", f.CA)
	}
	kp, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}, nil
}

func nextSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err)
	}
	return n
}

func newTLSFiles(dir string) (TLSFiles, error) {
	f := TLSFiles{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	now := time.Now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "sockwarden test CA " + filepath.Base(dir)},
		NotBefore: now, NotAfter: now.Add(25 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, err
	}
	if err := writePEM(f.CA, "CERTIFICATE", caDER, 0o644); err != nil {
		return f, err
	}
	leaf := func(cn string, usage x509.ExtKeyUsage, certPath, keyPath string, ips []net.IP, dns []string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn},
			NotBefore: now, NotAfter: now.Add(25 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips, DNSNames: dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
		return writePEM(keyPath, "EC PRIVATE KEY", kb, 0o600)
	}
	if err := leaf("127.0.0.1", x509.ExtKeyUsageServerAuth, f.ServerCert, f.ServerKey,
		[]net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}); err != nil {
		return f, err
	}
	if err := leaf(ClientCN, x509.ExtKeyUsageClientAuth, f.ClientCert, f.ClientKey, nil, nil); err != nil {
		return f, err
	}
	return f, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
