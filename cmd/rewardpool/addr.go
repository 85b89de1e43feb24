package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// parseAddr reads --addr: a bare host:port, or a URL with a scheme,
// http://host:port or https://host:port (a trailing slash is fine; a path is
// not, since every command knows its own). It returns host:port and whether
// the URL asked for TLS.
func parseAddr(addr string) (hostport string, https bool, err error) {
	if !strings.Contains(addr, "://") {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", false, fmt.Errorf("--addr %q: want host:port or a URL like http://host:port", addr)
		}
		return addr, false, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", false, fmt.Errorf("--addr %q: %w", addr, err)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return "", false, fmt.Errorf("--addr %q: scheme %q, want http or https", addr, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", false, fmt.Errorf("--addr %q: want only scheme, host and port, like %s://%s", addr, u.Scheme, u.Host)
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	return host, u.Scheme == "https", nil
}

// tlsFlags are the TLS flags shared by the client commands and bench.
type tlsFlags struct {
	tls, insecure bool
	cacert        string
}

func (f *tlsFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.tls, "tls", false, "connect with TLS (implied by an https:// --addr and by --cacert)")
	fs.StringVar(&f.cacert, "cacert", "", "PEM file of the CA that signed the server's certificate (a private CA); implies TLS")
	fs.BoolVar(&f.insecure, "insecure-skip-verify", false, "with TLS: do not verify the server's certificate (testing only)")
}

// config returns the client TLS configuration the flags and the --addr
// scheme ask for, or nil for plaintext. --cacert implies TLS; an http://
// address with TLS flags is a contradiction.
func (f *tlsFlags) config(https bool, addr string) (*tls.Config, error) {
	want := f.tls || https || f.cacert != ""
	if !want {
		if f.insecure {
			return nil, errors.New("--insecure-skip-verify needs TLS: --tls, --cacert or an https:// --addr")
		}
		return nil, nil
	}
	if strings.HasPrefix(addr, "http://") {
		return nil, errors.New("--addr is http:// but TLS flags are set: use https:// (or drop --tls, --cacert, --insecure-skip-verify)")
	}
	c := &tls.Config{InsecureSkipVerify: f.insecure}
	if f.cacert != "" {
		pem, err := os.ReadFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", f.cacert)
		}
		c.RootCAs = pool
	}
	return c, nil
}
