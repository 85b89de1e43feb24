package server

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/internal/config"
)

// startTLSNode is startNode for a node serving TLS with certFile/keyFile;
// a replica (replicaOf set) trusts caFile for its connection to the
// primary. The test's clients verify the node's certificate against roots.
func startTLSNode(t *testing.T, replicaOf, certFile, keyFile, caFile string, roots *x509.CertPool, configure func(*config.Config)) *testServer {
	t.Helper()
	ts := startServer(t, serverOpts{
		noRecover: true,
		tlsConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		configure: func(c *config.Config) {
			c.Durability = "none"
			c.Limits.MaxDrawCount = 100
			c.ReplicaOf = replicaOf
			c.Replication.Token = replToken
			c.Replication.CAFile = caFile
			c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile
			if configure != nil {
				configure(c)
			}
		},
	})
	ts.srv.replicaBackoff = 5 * time.Millisecond
	if err := ts.srv.Recover(); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	return ts
}

// waitConnected polls the replica's /v1/replication until every pool's
// stream is open.
func waitConnected(t *testing.T, r *testServer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := replicationJSON(t, r)
		ok := v.Role == "replica" && len(v.Pools) > 0
		for _, p := range v.Pools {
			ok = ok && p.Connected
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never connected over TLS: %+v\n%s", v, r.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A replica follows a TLS primary, verifying it against replication.ca_file
// (the primary's self-signed certificate), and serves TLS itself. The
// primary requires one synchronous replica, so every draw is also proof that
// the replica's acks reach it over TLS; at the end both show the same seq
// and state digest.
func TestReplicationOverTLS(t *testing.T) {
	certFile, keyFile, roots := writeSelfSigned(t, t.TempDir())
	primary := startTLSNode(t, "", certFile, keyFile, "", roots, func(c *config.Config) {
		c.Replication.MinSyncReplicas = 1
	})
	if !strings.HasPrefix(primary.base, "https://") {
		t.Fatalf("primary base %s: want https", primary.base)
	}
	paddr := primary.srv.Addr().String()
	r := startTLSNode(t, paddr, certFile, keyFile, certFile, roots, nil)
	waitConnected(t, r)
	if v := replicationJSON(t, r); v.Primary != paddr {
		t.Fatalf("replica's primary %q, want %s", v.Primary, paddr)
	}

	// With min_sync_replicas 1 a draw fails (503 after 5 s) unless the
	// replica confirms it, over TLS.
	drawLoad(t, primary, "prizes", 4, 200, 10)
	drawLoad(t, primary, "other", 1, 5, 1)
	want := waitSame(t, "prizes", primary, r)
	if want.LastRequestID != 2000 {
		t.Fatalf("last request id %d, want 2000", want.LastRequestID)
	}
	waitSame(t, "other", primary, r)
	d := primary.draw("prizes", "", `{"count": 3}`)
	if len(d) != 3 {
		t.Fatalf("draw after catch-up: %+v", d)
	}
	final := waitSame(t, "prizes", primary, r)
	if final.Seq <= want.Seq {
		t.Fatalf("seq did not advance: %d then %d", want.Seq, final.Seq)
	}
	t.Logf("primary and TLS replica agree at seq %d, digest %s", final.Seq, final.StateDigest)
}

// A replica whose ca_file does not hold the primary's certificate refuses
// the connection: TLS verification is on, not skipped.
func TestReplicationTLSWrongCA(t *testing.T) {
	certFile, keyFile, roots := writeSelfSigned(t, t.TempDir())
	otherCert, _, _ := writeSelfSigned(t, t.TempDir())
	primary := startTLSNode(t, "", certFile, keyFile, "", roots, nil)
	paddr := primary.srv.Addr().String()

	// No pools on disk and no trusted primary: Recover gives up (after its
	// bounded retry) naming the certificate problem.
	ts := startServer(t, serverOpts{noRecover: true, configure: func(c *config.Config) {
		c.Durability = "none"
		c.ReplicaOf = paddr
		c.Replication.Token = replToken
		c.Replication.CAFile = otherCert
	}})
	ts.srv.replicaBackoff = 5 * time.Millisecond
	err := ts.srv.Recover()
	if err == nil {
		t.Fatalf("replica with the wrong CA recovered:\n%s", ts.logs.String())
	}
	t.Logf("Recover: %v", err)
	if msg := err.Error(); !strings.Contains(msg, "certificate") && !strings.Contains(msg, "x509") {
		t.Fatalf("Recover error %q does not name the certificate problem", msg)
	}
}
