package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's Chromium, headless, from Go. A machine
// without it gets it the way deploy/local/stack.sh installs what the stack
// needs: apt-get, as root, once.

var (
	chromiumOnce sync.Once
	chromiumBin  string
	chromiumErr  error
)

// chromium returns the browser's path, installing the Debian package when
// it is missing. A machine that cannot have it fails the test: browser
// tests are never skipped.
func chromium(t *testing.T) string {
	t.Helper()
	chromiumOnce.Do(func() {
		find := func() string {
			for _, name := range []string{"chromium", "chromium-browser"} {
				if p, err := exec.LookPath(name); err == nil {
					return p
				}
			}
			return ""
		}
		if chromiumBin = find(); chromiumBin != "" {
			return
		}
		if os.Geteuid() != 0 {
			chromiumErr = fmt.Errorf("chromium is not installed and this is not root, to apt-get install it")
			return
		}
		env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", "chromium"}} {
			cmd := exec.Command("apt-get", args...)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				chromiumErr = fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
		if chromiumBin = find(); chromiumBin == "" {
			chromiumErr = fmt.Errorf("apt-get install chromium left no chromium on the PATH")
		}
	})
	if chromiumErr != nil {
		t.Fatal(chromiumErr)
	}
	return chromiumBin
}

// browser is one headless Chromium with a fresh profile.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1280, 860),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(cancelCtx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: base}
}

// tab is a person at the console: a browser context of their own (their
// own cookies), whose confirmation dialogs are answered yes.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func (b *browser) person(t *testing.T) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &tab{t: t, ctx: ctx, base: b.base}
	// The first action opens the tab, which lives as long as the context
	// it runs on: this one, not a step's timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return p
}

// step is how long one browser action may take before the test fails.
const step = 45 * time.Second

func (p *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, step)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("browser at %s: %v\npage: %s", p.location(), err, p.body())
	}
}

func run[T any](p *tab, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, step)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("browser at %s: %v", p.location(), err)
	}
	return v
}

// open loads a page of the console.
func (p *tab) open(path string) {
	p.t.Helper()
	p.do(chromedp.Navigate(p.base + path))
}

// click clicks the element and waits for the page it loads.
func (p *tab) click(sel string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, step)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		p.t.Fatalf("click %s at %s: %v\npage: %s", sel, p.location(), err, p.body())
	}
}

// set gives a form field a value, as typing or choosing would.
func (p *tab) set(sel, value string) {
	p.t.Helper()
	p.do(chromedp.SetValue(chromedp.CSS(sel), value))
}

// fill types into a field, after clearing it: it empties the field's value
// and types into it once focused, rather than chromedp.Clear then SendKeys:
// Clear sets the value attribute, and SendKeys reads the node's attributes
// outside their lock while chromedp's event loop writes that change (a
// data race inside chromedp v0.23.1 that -race caught).
func (p *tab) fill(sel, value string) {
	p.t.Helper()
	q, _ := json.Marshal(sel)
	p.do(chromedp.WaitVisible(chromedp.CSS(sel)))
	run(p, chromedp.Evaluate[bool]("(document.querySelector("+string(q)+").value = '') === ''"))
	p.do(chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(value))
}

func (p *tab) text(sel string) string {
	p.t.Helper()
	return run(p, chromedp.Text(chromedp.CSS(sel)))
}

func (p *tab) eval(js string) string {
	p.t.Helper()
	return run(p, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
}

// body is the visible text of the page ("" when it cannot be read).
func (p *tab) body() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

func (p *tab) location() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Location())
	return strings.TrimPrefix(s, p.base)
}

// see fails unless the page shows every text of want.
func (p *tab) see(want ...string) {
	p.t.Helper()
	body := p.body()
	for _, w := range want {
		if !strings.Contains(body, w) {
			p.t.Fatalf("%s does not show %q; it shows:\n%s", p.location(), w, body)
		}
	}
}

// notSee fails if the page shows any text of bad.
func (p *tab) notSee(bad ...string) {
	p.t.Helper()
	body := p.body()
	for _, w := range bad {
		if strings.Contains(body, w) {
			p.t.Fatalf("%s shows %q, which this token may not see:\n%s", p.location(), w, body)
		}
	}
}

// at fails unless the browser is at path (query included).
func (p *tab) at(path string) {
	p.t.Helper()
	if got := p.location(); got != path {
		p.t.Fatalf("at %s, want %s", got, path)
	}
}

// shot saves a screenshot of the viewport as name.png in
// $TARIFA_CONSOLE_SHOTS (the README's pictures come from here); without
// that variable it does nothing.
func (p *tab) shot(name string) {
	p.t.Helper()
	dir := os.Getenv("TARIFA_CONSOLE_SHOTS")
	if dir == "" {
		return
	}
	buf := run(p, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// signIn signs in with token and lands on the dashboard.
func (p *tab) signIn(token string) {
	p.t.Helper()
	p.open("/signin")
	p.fill("#token", token)
	p.click("form[action='/signin'] button")
	p.see("Today")
}
