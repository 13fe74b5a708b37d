"""Drives hearken's browser app in a real Chromium (Debian's, through Playwright) and prints
what the page showed as one JSON object; the Rust test (tests/web_app.rs) scores it.

    python3 drive.py mic   --url URL --clip WAV --shots DIR
    python3 drive.py file  --url URL --clip AUDIO --shots DIR
    python3 drive.py cross-origin --refusing URL --allowing URL --shots DIR

Each scenario saves a screenshot in DIR. Chromium's fake microphone plays --clip once
(`%noloop`); no test tool downloads a browser: Playwright drives /usr/bin/chromium.
"""

import argparse
import functools
import http.server
import json
import os
import sys
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("HEARKEN_CHROMIUM", "/usr/bin/chromium")
DIST = Path(__file__).resolve().parent.parent / "dist"
# Flags for a closed network and a root user; the fake devices stand in for a microphone.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def launch(playwright, fake_audio=None):
    args = list(FLAGS)
    if fake_audio:
        args += [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={Path(fake_audio).resolve()}%noloop",
        ]
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


def open_app(browser, url):
    page = browser.new_page(accept_downloads=True)
    messages = []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    page.goto(url)
    page.wait_for_function("() => document.querySelector('#model').options.length > 0 || "
                           "document.querySelector('#status').classList.contains('error')")
    return page, messages


def state(page):
    """What #transcript shows, utterance by utterance, and #status."""
    return page.evaluate("""() => ({
        transcript: document.querySelector('#transcript').innerText,
        utterances: [...document.querySelectorAll('#transcript .utterance')].map(u => ({
            committed: u.querySelector('.committed').textContent,
            tentative: u.querySelector('.tentative').textContent,
            final: u.classList.contains('final'),
            latency: u.dataset.latency || null,
        })),
        status: document.querySelector('#status').textContent,
        status_is_error: document.querySelector('#status').classList.contains('error'),
    })""")


def mic(args):
    """Speaks --clip into the fake microphone; records which utterances showed tentative text
    before their final, then stops and returns the finals."""
    with sync_playwright() as p:
        browser = launch(p, fake_audio=args.clip)
        page, console = open_app(browser, args.url)
        page.click("#mic")
        started = time.monotonic()
        tentative_before_final = set()
        first_tentative_s = None
        snapshots = 0
        while time.monotonic() - started < args.seconds:
            now = state(page)
            snapshots += 1
            for index, u in enumerate(now["utterances"]):
                if u["tentative"].strip() and not u["final"]:
                    if first_tentative_s is None:
                        first_tentative_s = time.monotonic() - started
                        page.screenshot(path=str(Path(args.shots) / "mic-tentative.png"))
                    tentative_before_final.add(index)
            if now["status_is_error"]:
                break
            time.sleep(0.05)
        page.click("#mic")  # stop: the open utterance is finished
        page.wait_for_function("() => document.querySelector('#mic').textContent.includes('Start')",
                               timeout=20_000)
        page.screenshot(path=str(Path(args.shots) / "mic.png"))
        result = state(page)
        result.update(tentative_before_final=sorted(tentative_before_final),
                      first_tentative_s=first_tentative_s, snapshots=snapshots,
                      console=console)
        browser.close()
        return result


def file(args):
    """Picks --clip in the file input; records every progress value the page showed."""
    with sync_playwright() as p:
        browser = launch(p)
        page, console = open_app(browser, args.url)
        page.evaluate("""() => {
            window.__progress = [];
            const bar = document.querySelector('#progress');
            new MutationObserver(() => window.__progress.push([bar.value, bar.max]))
                .observe(bar, {attributes: true, attributeFilter: ['value', 'max']});
        }""")
        page.set_input_files("#file", str(Path(args.clip).resolve()))
        page.wait_for_function("() => !document.querySelector('#download-srt').disabled || "
                               "document.querySelector('#status').classList.contains('error')",
                               timeout=args.seconds * 1000)
        page.screenshot(path=str(Path(args.shots) / "file.png"), full_page=True)
        result = state(page)
        result["progress"] = page.evaluate("() => window.__progress")
        result["segments"] = page.evaluate(
            "() => [...document.querySelectorAll('#transcript .segment')].map(s => s.textContent)")
        downloads = {}
        if not result["status_is_error"]:
            for kind in ("srt", "vtt", "json"):
                with page.expect_download() as info:
                    page.click(f"#download-{kind}")
                downloads[kind] = Path(info.value.path()).read_text()
        result.update(downloads=downloads, console=console)
        browser.close()
        return result


@functools.cache
def foreign_origin():
    """Serves the app's files from a second origin (another port), as another site would."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(DIST))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def cross_origin(args):
    """The app on a foreign origin, pointed (?server=) at a server that refuses that origin and
    at one that allows it: the first must fail with a message, the second must list models."""
    origin = foreign_origin()
    result = {"origin": origin}
    with sync_playwright() as p:
        browser = launch(p, fake_audio=args.clip)
        for name, server in (("refusing", args.refusing), ("allowing", args.allowing)):
            page, console = open_app(browser, f"{origin}/?server={server}")
            models = page.evaluate("() => [...document.querySelector('#model').options].map(o => o.value)")
            page.click("#mic")
            page.wait_for_function("() => document.querySelector('#status').classList.contains('error') ||"
                                   " document.querySelector('#status').textContent.startsWith('Listening')",
                                   timeout=20_000)
            page.screenshot(path=str(Path(args.shots) / f"cross-origin-{name}.png"))
            result[name] = dict(state(page), models=models, console=console)
            page.close()
        browser.close()
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["mic", "file", "cross-origin"])
    parser.add_argument("--url")
    parser.add_argument("--refusing")
    parser.add_argument("--allowing")
    parser.add_argument("--clip", required=True)
    parser.add_argument("--shots", required=True)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    Path(args.shots).mkdir(parents=True, exist_ok=True)
    run = {"mic": mic, "file": file, "cross-origin": cross_origin}[args.scenario]
    json.dump(run(args), sys.stdout)


if __name__ == "__main__":
    main()
