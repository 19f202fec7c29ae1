// Debian's Chromium driven by playwright-core (never a downloaded browser), pages that may talk
// to the server under test only, and screenshots in a folder a person can open.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import { REPO_DIR } from "./server.mjs";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export async function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} does not exist: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000 });
}

/**
 * A fresh browser context (its own storage: a second device) that lets requests reach `origin`
 * only; anything else is aborted and recorded. Uncaught page errors and CSP violations are
 * recorded too. `check()` fails the test if any happened.
 */
export async function newDevice(browser, origin, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  context.setDefaultTimeout(10_000);
  const problems = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`) || url.startsWith("data:") || url.startsWith("blob:")) return route.continue();
    problems.push(`request to another host: ${url}`);
    return route.abort();
  });
  context.on("page", (page) => watch(page, problems));
  const page = await context.newPage();
  return {
    context,
    page,
    check() {
      assert.deepEqual(problems, [], "the app made no outside request, threw nothing and broke no CSP rule");
    },
  };
}

function watch(page, problems) {
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && /Content.Security.Policy/i.test(message.text())) {
      problems.push(`CSP: ${message.text()}`);
    }
  });
}

/** Numbered full-page screenshots in E2E_SCREENSHOTS (default e2e/screenshots/), emptied first. */
export function screenshotFolder() {
  const dir = resolve(process.env.E2E_SCREENSHOTS ?? join(REPO_DIR, "e2e", "screenshots"));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let count = 0;
  return {
    dir,
    async shoot(page, name) {
      count += 1;
      const file = join(dir, `${String(count).padStart(2, "0")}-${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
  };
}
