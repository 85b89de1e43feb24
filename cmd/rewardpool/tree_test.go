package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTree covers the binary's own surface: version, help on every
// command, --addr as a URL and --cacert for a TLS server with a private CA.
func TestTree(t *testing.T) {
	bin := buildBinary(t)
	t.Run("version", func(t *testing.T) { testVersion(t, bin) })
	t.Run("help", func(t *testing.T) { testHelp(t, bin) })
	t.Run("addr and cacert", func(t *testing.T) { testAddrAndCACert(t, bin) })
}

// `rewardpool version` and `--version` print the module version, the VCS
// revision the build info carries, and the Go version.
func testVersion(t *testing.T, bin string) {
	out, errOut, code := runCLI(t, bin, "version")
	if code != 0 {
		t.Fatalf("version: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"rewardpool ", "module    github.com/rewardpool/rewardpool ", "revision  ", "go        go1."} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
	flagOut, errOut, code := runCLI(t, bin, "--version")
	if code != 0 || flagOut != out {
		t.Errorf("--version: exit %d, %q (stderr %s); want the same as version:\n%s", code, flagOut, errOut, out)
	}
	// The revision is the checkout's when the build stamped one.
	if i := strings.Index(out, "revision  "); i >= 0 && !strings.HasPrefix(out[i:], "revision  unknown") {
		rev := strings.Fields(out[i+len("revision  "):])[0]
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err == nil && strings.TrimSpace(string(head)) != rev {
			t.Errorf("version says revision %s, the checkout is at %s", rev, head)
		}
	}
	if _, _, code := runCLI(t, bin, "version", "extra"); code == 0 {
		t.Error("version with an argument: exit 0")
	}
}

// Every command and subcommand answers --help with its usage (exit 0), and
// lists only flags that do something there.
func testHelp(t *testing.T, bin string) {
	for _, tc := range []struct {
		args         []string
		want, absent []string
	}{
		{[]string{"serve"}, []string{"-config", "-listen", "-data-dir", "-replica-of"}, nil},
		{[]string{"draw"}, []string{"-count", "-key", "-addr", "-cacert", "-tls"}, nil},
		{[]string{"state"}, []string{"-all", "-addr", "-cacert"}, nil},
		{[]string{"admin"}, []string{"set", "remove"}, nil},
		{[]string{"admin", "set"}, []string{"-id", "-quantity", "-weight", "-cacert"}, nil},
		{[]string{"admin", "remove"}, []string{"-id"}, nil},
		{[]string{"promote"}, []string{"-addr", "-cacert"}, nil},
		{[]string{"wal"}, []string{"dump", "verify", "repair", "reseed"}, nil},
		{[]string{"wal", "dump"}, []string{"-from", "-data-dir", "-v"}, nil},
		{[]string{"wal", "verify"}, []string{"-data-dir"}, []string{"-from"}},
		{[]string{"wal", "repair"}, []string{"-data-dir"}, []string{"-from"}},
		{[]string{"wal", "reseed"}, []string{"-data-dir"}, []string{"-from"}},
		{[]string{"snapshot"}, []string{"inspect"}, nil},
		{[]string{"snapshot", "inspect"}, []string{"-file", "-data-dir"}, []string{"  -v"}},
		{[]string{"bench"}, []string{"-mode", "-cacert", "-redis-setup"}, nil},
		{[]string{"version"}, []string{"usage: rewardpool version"}, nil},
	} {
		args := append(tc.args, "--help")
		out, errOut, code := runCLI(t, bin, args...)
		text := out + errOut
		if code != 0 {
			t.Errorf("rewardpool %v: exit %d:\n%s", args, code, text)
			continue
		}
		if !strings.Contains(text, "usage: rewardpool "+strings.Join(tc.args, " ")) {
			t.Errorf("rewardpool %v: no usage line:\n%s", args, text)
		}
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("rewardpool %v: help lacks %q:\n%s", args, w, text)
			}
		}
		for _, a := range tc.absent {
			if strings.Contains(text, a) {
				t.Errorf("rewardpool %v: help lists %q, which does nothing there:\n%s", args, a, text)
			}
		}
	}
	// Without a subcommand: an error naming the choices, not a crash.
	if _, errOut, code := runCLI(t, bin, "admin"); code == 0 || !strings.Contains(errOut, "set, remove") {
		t.Errorf("admin without a subcommand: exit %d, %s", code, errOut)
	}
}

// fakeDrawServer answers a draw like the real server.
func fakeDrawHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/pools/prizes/draw", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"draws":[{"request_id":1,"item_id":"gold"}]}`)
	})
	return mux
}

// --addr takes a URL with a scheme; --cacert trusts a private CA.
func testAddrAndCACert(t *testing.T, bin string) {
	plain := httptest.NewServer(fakeDrawHandler())
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(fakeDrawHandler())
	t.Cleanup(secure.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	plainHost := strings.TrimPrefix(plain.URL, "http://")
	secureHost := strings.TrimPrefix(secure.URL, "https://")

	for _, tc := range []struct {
		name    string
		args    []string
		ok      bool
		mention string // in stderr when !ok
	}{
		{"host:port", []string{"--addr", plainHost}, true, ""},
		{"http URL", []string{"--addr", plain.URL}, true, ""},
		{"http URL with slash", []string{"--addr", plain.URL + "/"}, true, ""},
		{"https URL with private CA", []string{"--addr", secure.URL, "--cacert", ca}, true, ""},
		{"host:port with --cacert", []string{"--addr", secureHost, "--cacert", ca}, true, ""},
		{"https URL without the CA", []string{"--addr", secure.URL}, false, "certificate"},
		{"http URL with --cacert", []string{"--addr", plain.URL, "--cacert", ca}, false, "https://"},
		{"unknown scheme", []string{"--addr", "ftp://" + plainHost}, false, "scheme"},
		{"URL with a path", []string{"--addr", plain.URL + "/v1"}, false, "--addr"},
		{"missing CA file", []string{"--addr", secure.URL, "--cacert", ca + ".nope"}, false, "--cacert"},
	} {
		args := append([]string{"draw", "--pool", "prizes"}, tc.args...)
		out, errOut, code := runCLI(t, bin, args...)
		if tc.ok {
			if code != 0 || !strings.Contains(out, `"item_id": "gold"`) {
				t.Errorf("%s: exit %d, out %q, err %s", tc.name, code, out, errOut)
			}
			continue
		}
		if code == 0 || !strings.Contains(errOut, tc.mention) {
			t.Errorf("%s: exit %d, stderr %q; want a failure mentioning %q", tc.name, code, errOut, tc.mention)
		}
	}

	// bench takes the same forms.
	var out bytes.Buffer
	err := runBenchCtx(context.Background(), []string{"--addr", secure.URL, "--cacert", ca, "--mode", "http",
		"--pool", "prizes", "--concurrency", "1", "--requests", "5", "--warmup", "0s", "--json"}, &out, io.Discard)
	if err != nil {
		t.Errorf("bench against https with --cacert: %v\n%s", err, out.String())
	}
}
