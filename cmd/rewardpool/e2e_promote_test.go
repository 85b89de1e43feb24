package main

// End-to-end tests of replica readiness and promotion as an operator meets
// them: a replica started with the primary's own config file (admin_token,
// no replication.token), a replica with the wrong token, and `promote`
// while the primary is alive and after it died.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const promotePool = "main"

// The primary's own config: an admin token, no replication section.
const sharedConfig = `admin_token: ` + e2eAdminToken + `
durability: always
pools:
  - name: ` + promotePool + `
    items:
      - {id: gold, quantity: 100000, weight: 1}
`

// readyz reads /readyz: its status code and body (0 when unreachable).
func readyz(addr string) (int, string) {
	code, b, err := httpDo("GET", "http://"+addr+"/readyz", "", "")
	if err != nil {
		return 0, err.Error()
	}
	return code, string(b)
}

func TestE2EPromote(t *testing.T) {
	bin := buildBinary(t)
	t.Run("SharedConfig", func(t *testing.T) { testPromoteSharedConfig(t, bin) })
	t.Run("WrongToken", func(t *testing.T) { testReplicaWrongToken(t, bin) })
}

// A replica started with the primary's own config syncs (it authenticates
// with the admin token), is ready only once caught up, refuses promotion
// while the primary serves, turns unready when the primary dies, and is
// then promoted, continuing the primary's request ids.
func testPromoteSharedConfig(t *testing.T, bin string) {
	dir := t.TempDir()
	cfg := writeConfig(t, t.TempDir(), sharedConfig)
	primary := startServer(t, bin, filepath.Join(dir, "primary"), cfg)
	for range 2 {
		httpDraw(t, primary.addr, promotePool, 100)
	}

	rep := startReplicaProc(t, bin, filepath.Join(dir, "replica"), cfg, primary.addr)
	var code int
	var body string
	pollUntil(t, 30*time.Second, func() bool {
		code, body = readyz(rep.addr)
		return code == 200
	}, func() string { return fmt.Sprintf("replica /readyz: %d %s; log:\n%s", code, body, rep.log.String()) })
	// Ready means caught up: the replica holds the primary's 200 draws.
	if p := getPool(t, rep.addr, promotePool); p.LastRequestID != 200 || len(p.Items) != 1 {
		t.Fatalf("replica ready with last_request_id %d and %d items, want 200 and 1; log:\n%s",
			p.LastRequestID, len(p.Items), rep.log.String())
	}

	// promote acts on the whole node: no --pool to mislead.
	if _, errOut, exit := runCLI(t, bin, "promote", "--addr", rep.addr, "--token", e2eAdminToken, "--pool", promotePool); exit == 0 ||
		!strings.Contains(errOut, "-pool") {
		t.Fatalf("promote --pool: exit %d: %s", exit, errOut)
	}
	// The primary is alive and serving: promotion is refused, with the reason.
	out, errOut, exit := runCLI(t, bin, "promote", "--addr", rep.addr, "--token", e2eAdminToken)
	if exit == 0 {
		t.Fatalf("promote while the primary serves succeeded: %s", out)
	}
	if !strings.Contains(errOut, "still reachable") || !strings.Contains(errOut, "--force") {
		t.Fatalf("promote refusal does not give the reason and the way out: %s", errOut)
	}
	mustHTTP(t, "POST", "http://"+rep.addr+"/v1/pools/"+promotePool+"/draw", "", `{"count":1}`, 409)

	// The primary dies: the replica leaves rotation, saying why.
	primary.kill()
	pollUntil(t, 30*time.Second, func() bool {
		code, body = readyz(rep.addr)
		return code == 503 && strings.Contains(body, "primary")
	}, func() string { return fmt.Sprintf("replica /readyz after the primary died: %d %s", code, body) })

	out, errOut, exit = runCLI(t, bin, "promote", "--addr", rep.addr, "--token", e2eAdminToken)
	if exit != 0 {
		t.Fatalf("promote after the primary died: exit %d: %s\n%s", exit, errOut, out)
	}
	var pr struct {
		Epoch uint64   `json:"epoch"`
		Pools []string `json:"pools"`
	}
	if err := json.Unmarshal([]byte(out), &pr); err != nil || len(pr.Pools) != 1 || pr.Pools[0] != promotePool {
		t.Fatalf("promote output %q (%v): want the promoted pools listed", out, err)
	}
	if d := httpDraw(t, rep.addr, promotePool, 1); d[0].RequestID != 201 {
		t.Fatalf("first draw on the promoted replica got request id %d, want 201", d[0].RequestID)
	}
	if code, body := readyz(rep.addr); code != 200 {
		t.Fatalf("promoted node /readyz: %d %s", code, body)
	}
	rep.stop()
}

// A replica whose token the primary refuses says so in its log, with the
// fix, is never ready, and is not promoted without --force.
func testReplicaWrongToken(t *testing.T, bin string) {
	dir := t.TempDir()
	cfg := writeConfig(t, t.TempDir(), sharedConfig)
	primary := startServer(t, bin, filepath.Join(dir, "primary"), cfg)
	httpDraw(t, primary.addr, promotePool, 10)

	rcfg := writeConfig(t, t.TempDir(), strings.Replace(sharedConfig, e2eAdminToken, "not-the-primary-token", 1))
	rep := startReplicaProc(t, bin, filepath.Join(dir, "replica"), rcfg, primary.addr)
	rep.waitLog(regexp.MustCompile(`(?i)authentication.*replication\.token`), startTimeout)
	var code int
	var body string
	pollUntil(t, 30*time.Second, func() bool {
		code, body = readyz(rep.addr)
		return code == 503 && strings.Contains(strings.ToLower(body), "authentication")
	}, func() string { return fmt.Sprintf("replica /readyz: %d %s", code, body) })

	primary.kill()
	out, errOut, exit := runCLI(t, bin, "promote", "--addr", rep.addr, "--token", "not-the-primary-token")
	if exit == 0 {
		t.Fatalf("promote of a replica that never synced succeeded: %s", out)
	}
	if !strings.Contains(errOut, "never") {
		t.Fatalf("promote refusal does not say the replica never synced: %s", errOut)
	}
	rep.stop()
}
