#!/usr/bin/env python3
"""Drives headless Chromium through Cairn's web audit view over the DevTools protocol.

Standard library only. Chromium is started with --remote-debugging-pipe: protocol messages are
JSON texts ending in a NUL byte, read by Chromium from fd 3 and written by it to fd 4. Every
wait is for a condition in the page (a promise that settles when the condition holds, or fails
at a deadline), never a fixed sleep.

    audit_view_browser.py walk BASE_URL ENTRY_ID SCREENSHOT.png
        Loads the page, scrolls the graph until every window is loaded, opens ENTRY_ID, follows
        its first parent link, then that parent's key link, and saves a screenshot. Prints one
        JSON object with what it saw.
    audit_view_browser.py measure BASE_URL
        Loads the page and scrolls through the log; prints the time to the first rendered rows
        and the cost of scrolling (render times, rows loaded per second).

Exit status 0 when the page behaved; 1 with a message on stderr otherwise.
"""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile

DEADLINE_MS = 30000


class PageError(Exception):
    pass


class Browser:
    """One headless Chromium with one page, driven over the pipe transport."""

    def __init__(self, chromium, width=1400, height=860):
        self.profile = tempfile.mkdtemp(prefix="cairn-chromium-")
        to_browser_read, self.to_browser = os.pipe()
        self.from_browser, from_browser_write = os.pipe()

        def wire_fds():
            # fds 3 and 4 by number: move both ends out of the way first.
            high_read = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            high_write = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(high_read, 3)
            os.dup2(high_write, 4)

        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--user-data-dir=" + self.profile, "--no-first-run", "--no-default-browser-check",
             "--window-size=%d,%d" % (width, height), "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=wire_fds)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self.next_id = 0
        self.buffer = b""
        self.session = None
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method, params=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.read_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise PageError("%s failed: %s" % (method, reply["error"]))
                return reply["result"]

    def read_message(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_browser, 65536)
            if not chunk:
                raise PageError("chromium closed the DevTools pipe")
            self.buffer += chunk
        text, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(text)

    def evaluate(self, expression):
        """The value of a JavaScript expression (awaited if it is a promise)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise PageError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def wait_for(self, condition, what):
        """Waits until `condition` (a JavaScript expression) is truthy in the page; returns its value."""
        return self.evaluate("""new Promise((resolve, reject) => {
            const start = performance.now();
            (function poll() {
                let value = null;
                try { value = (%s); } catch (error) { value = null; }
                if (value) resolve(value);
                else if (performance.now() - start > %d) reject(new Error("timed out waiting for: " + %s));
                else setTimeout(poll, 10);
            })();
        })""" % (condition, DEADLINE_MS, json.dumps(what)))

    def navigate(self, url):
        self.call("Page.navigate", {"url": url})

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close")
        except PageError:
            pass
        self.process.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)


# Scrolls the graph to its end until every window is loaded (the page fetches the next window
# when the screen nears the last loaded row); resolves with the number of scroll steps.
SCROLL_TO_END = """new Promise((resolve, reject) => {
    const scroller = document.getElementById("graph-scroll");
    const start = performance.now();
    let steps = 0;
    (function step() {
        if (document.body.dataset.complete === "yes") { scroller.scrollTop = 0; resolve(steps); return; }
        if (performance.now() - start > %d) { reject(new Error("the graph never loaded its last window")); return; }
        scroller.scrollTop = scroller.scrollHeight;
        steps += 1;
        setTimeout(step, 10);
    })();
})""" % DEADLINE_MS

VIEW_IS = "document.getElementById('detail').dataset.view === %s"


def walk(browser, base, entry_id, screenshot):
    browser.navigate(base + "/")
    browser.wait_for("Number(document.body.dataset.loadedRows) > 0 && document.querySelectorAll('#graph-rows .row').length > 0",
                     "the first rows of the graph")
    browser.wait_for(VIEW_IS % json.dumps("overview"), "the overview")
    first_rows = int(browser.evaluate("document.body.dataset.loadedRows"))
    browser.evaluate(SCROLL_TO_END)
    seen = {
        "first_window_rows": first_rows,
        "rows": int(browser.evaluate("document.body.dataset.loadedRows")),
        "edges": int(browser.evaluate("document.body.dataset.edges")),
        "rows_in_dom": browser.evaluate("document.querySelectorAll('#graph-rows .row').length"),
        "canvas_width": browser.evaluate("document.getElementById('graph-canvas').width"),
    }

    # Entry → its first parent → the parent's key history, by clicking as a person would.
    browser.evaluate("location.hash = '#/entry/%s'" % entry_id)
    seen["entry"] = browser.wait_for(
        "document.getElementById('detail').dataset.view === 'entry' && document.getElementById('entry-id').textContent === %s "
        "&& document.getElementById('entry-id').textContent" % json.dumps(entry_id), "the entry's detail")
    seen["selected_row"] = browser.evaluate("(document.querySelector('#graph-rows .row.selected') || {}).dataset?.id || null")
    seen["verification"] = browser.evaluate("[...document.querySelectorAll('#detail .ok, #detail .bad')].map(e => e.textContent)")
    parent = browser.evaluate("document.querySelector('#detail a.parent').textContent")
    browser.evaluate("document.querySelector('#detail a.parent').click()")
    seen["parent"] = browser.wait_for(
        "document.getElementById('detail').dataset.view === 'entry' && document.getElementById('entry-id').textContent === %s "
        "&& document.getElementById('entry-id').textContent" % json.dumps(parent), "the parent's detail")
    browser.evaluate("document.querySelector('#detail a[href^=\"#/key/\"]').click()")
    seen["key"] = browser.wait_for(VIEW_IS % json.dumps("key") + " && document.getElementById('key-path').textContent", "the key history")
    seen["versions"] = browser.evaluate(
        "[...document.querySelectorAll('#versions tr')].slice(1).map(r => ({id: r.querySelector('a').textContent, "
        "status: r.querySelector('.status').textContent}))")
    browser.screenshot(screenshot)
    return seen


def measure(browser, base):
    browser.navigate(base + "/")
    first = browser.wait_for("Number(document.body.dataset.firstRenderMs) > 0 && Number(document.body.dataset.firstRenderMs)",
                             "the first rows of the graph")
    # Scroll a screen at a time through the first 10,000 rows, timing each frame's render.
    return dict(first_render_ms=first, **browser.evaluate("""new Promise((resolve, reject) => {
        const scroller = document.getElementById("graph-scroll");
        const start = performance.now();
        (function step() {
            const loaded = Number(document.body.dataset.loadedRows);
            if (loaded >= 10000 || document.body.dataset.complete === "yes") {
                resolve({ rows: loaded, ms: Math.round(performance.now() - start),
                          render_ms_max: Number(document.body.dataset.renderMsMax),
                          render_ms_mean: Number(document.body.dataset.renderMsMean) });
                return;
            }
            if (performance.now() - start > %d) { reject(new Error("scrolling stalled")); return; }
            scroller.scrollTop += scroller.clientHeight;
            requestAnimationFrame(step);
        })();
    })""" % (DEADLINE_MS * 4)))


def main(arguments):
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise PageError("chromium is not installed (.ci/run installs it)")
    browser = Browser(chromium)
    try:
        if arguments[:1] == ["walk"] and len(arguments) == 4:
            result = walk(browser, arguments[1], arguments[2], arguments[3])
        elif arguments[:1] == ["measure"] and len(arguments) == 2:
            result = measure(browser, arguments[1])
        else:
            raise PageError(__doc__)
    finally:
        browser.close()
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except PageError as error:
        print("audit_view_browser: %s" % error, file=sys.stderr)
        sys.exit(1)
