package server

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's Chromium for the console's browser tests; .ci/run
// installs it where it can.
func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("PEERQ_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Skip("no Chromium here (apt-get install chromium, or set PEERQ_CHROMIUM): the console's browser test cannot run")
	return ""
}

// The console in a real browser (headless Chromium through chromedp): a
// wrong token is refused; the right one logs in (a cookie the page's
// scripts cannot read); a statement runs and its rows and status show;
// EXPLAIN shows the plan; the members and subclouds are listed.
func TestConsoleInBrowser(t *testing.T) {
	bin := chromium(t)
	nodes := startCluster(t, 6, nil)
	tok := "console-token-0123456789abcdef"
	srv := serveToken(t, nodes[0], tok)
	execute(t, nodes[0], "RESERVE 2 AS shown FOR 1m")
	base := "http://" + srv.Addr()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()))
	// Start the browser. Chromium now and then exits before it prints
	// its DevTools address, with nothing on stderr (twice in about a
	// hundred starts back to back on this machine; the test had not yet
	// reached the console); that is the browser's start, not what this
	// test checks, so a start is tried three times, each failure logged.
	var ctx context.Context
	for try := 1; ; try++ {
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, cancelBrowser := chromedp.NewContext(actx)
		err := chromedp.Do(bctx)
		if err == nil {
			ctx = bctx
			defer cancelAlloc()
			defer cancelBrowser()
			break
		}
		cancelBrowser()
		cancelAlloc()
		if try == 3 {
			t.Fatalf("Chromium did not start in %d tries: %v", try, err)
		}
		t.Logf("Chromium did not start (try %d): %v", try, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	do := func(acts ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, acts...); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	do(chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible("#login-form"),
		chromedp.SendKeys("#token", "wrong"), chromedp.Click("#login-button"), chromedp.WaitVisible("#login-error"))
	denied := text("#login-error")
	do(chromedp.SetValue("#token", tok), chromedp.Click("#login-button"), chromedp.WaitVisible("body[data-ready]"))
	cookieSeen, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	do(chromedp.SetValue("#statement", "SELECT region, COUNT(*) FROM peers WHERE mem_free >= 0B GROUP BY region"),
		chromedp.Click("#run"), chromedp.WaitVisible("#result tr:nth-child(2)"))
	rows, status := text("#result"), text("#status")
	do(chromedp.Click("#explain"), chromedp.WaitVisible("#explain-text"))
	explain := text("#explain-text")
	do(chromedp.WaitVisible("#subclouds tr:nth-child(2)"))
	members, subclouds := text("#members"), text("#subclouds")
	// RESERVE from the form, RELEASE from the list.
	do(chromedp.SetValue("#reserve-n", "2"), chromedp.SetValue("#reserve-name", "formed"), chromedp.SetValue("#reserve-for", "10m"),
		chromedp.Click("#reserve"), chromedp.WaitVisible(`button.release[data-name="formed"]`))
	// The owner's account of the subcloud, as its collector shows it.
	if size, ok := metric(t, nodes[0], "peerq_subcloud_members", "subcloud", "formed"); size != 2 {
		t.Errorf("RESERVE from the console: %v members (owned: %v)", size, ok)
	}
	do(chromedp.Click(`button.release[data-name="formed"]`), chromedp.WaitNotPresent(`button.release[data-name="formed"]`))
	if size, ok := metric(t, nodes[0], "peerq_subcloud_members", "subcloud", "formed"); ok {
		t.Errorf("RELEASE from the console: still owned (%v members)", size)
	}
	// WATCH: at least two epochs redraw the table and the chart; leaving
	// the page (the tab closes its request) stops the standing query at
	// every peer.
	do(chromedp.SetValue("#statement", "WATCH SELECT region, COUNT(*) FROM peers WHERE mem_free >= 0B GROUP BY region EVERY 1s"),
		chromedp.Click("#run"), chromedp.WaitVisible("#chart canvas"))
	var watched string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(watched, "epoch 2"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("WATCH: no second epoch; status %q", watched)
		}
		watched = text("#status")
	}
	do(chromedp.Navigate("about:blank"))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left := running(t, nodes)
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d query instances still run after the tab left the WATCH", left)
		}
	}
	if path := os.Getenv("PEERQ_SCREENSHOT"); path != "" {
		// The picture in docs/img: PEERQ_SCREENSHOT=$PWD/docs/img/console.png
		do(chromedp.EmulateViewport(1280, 760), chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible("body[data-ready]"),
			chromedp.SetValue("#statement", "WATCH SELECT region, AVG(cpu_load) FROM peers GROUP BY region EVERY 1s"),
			chromedp.Click("#run"), chromedp.WaitVisible("#chart canvas"))
		for shot := ""; !strings.Contains(shot, "epoch 4"); time.Sleep(100 * time.Millisecond) {
			shot = text("#status")
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if denied != "wrong token" {
		t.Errorf("a wrong token: %q", denied)
	}
	if strings.Contains(cookieSeen, tok) {
		t.Error("the page's scripts can read the token cookie (want HttpOnly)")
	}
	if !strings.Contains(rows, "region") || !strings.Contains(rows, "COUNT(*)") {
		t.Errorf("rows: %q", rows)
	}
	if !strings.Contains(status, "6 peers") || !strings.Contains(status, "converged") {
		t.Errorf("status: %q", status)
	}
	if !strings.Contains(explain, "gossip aggregation") {
		t.Errorf("EXPLAIN: %q", explain)
	}
	if !strings.Contains(members, nodes[5].Name()) || !strings.Contains(members, "region=") || !strings.Contains(subclouds, "shown") {
		t.Errorf("members %q, subclouds %q", members, subclouds)
	}
}
