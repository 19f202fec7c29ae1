// The example app in a real browser: Debian's Chromium, the production build served by the
// release binary (`basalt serve --static-dir`), mail read from the dev outbox. The steps run in
// order and build on each other, like a person trying the app for the first time.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { launchChromium, newDevice, screenshotFolder } from "../support/browser.mjs";
import { solidPng } from "../support/png.mjs";
import { startBasalt } from "../support/server.mjs";

const STEP = { timeout: 60_000 };

let server;
let browser;
let shots;
const devices = [];

const email = `ada+${randomBytes(4).toString("hex")}@example.com`;
const firstPassword = `basalt ${randomBytes(6).toString("hex")} one`;
const resetPassword = `basalt ${randomBytes(6).toString("hex")} two`;

async function device(options) {
  const made = await newDevice(browser, server.url, options);
  devices.push(made);
  return made;
}

/** The newest mail to `to` whose text holds a `/_auth/email/<kind>` link, and that link. */
async function mailedLink(to, kind, sentAfter) {
  const pattern = new RegExp(`https?://[^\\s"'<>]+/_auth/email/${kind}\\?token=[A-Za-z0-9_-]+`);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const mails = await server.mail();
    const mail = mails.find((m) => m.to.includes(to) && pattern.test(m.text) && !sentAfter.has(m.id));
    if (mail) {
      sentAfter.add(mail.id);
      return pattern.exec(mail.text)[0];
    }
    if (Date.now() > deadline) assert.fail(`no ${kind} mail to ${to}; mailbox: ${JSON.stringify(mails.map((m) => [m.to, m.subject]))}`);
    await delay(100);
  }
}
const seenMail = new Set();

async function signIn(page, password) {
  await page.goto(`${server.url}/sign-in`);
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

async function signOut(page) {
  await page.getByRole("button", { name: "Sign out", exact: true }).last().click();
  await page.waitForURL(`${server.url}/sign-in`);
}

/** The avatar <img>, once it has loaded; returns its src and natural width. */
async function renderedAvatar(page, previousSrc) {
  const img = page.getByTestId("avatar-image");
  await img.waitFor();
  const handle = await page.waitForFunction(
    (previous) => {
      const el = document.querySelector('[data-testid="avatar-image"]');
      return el && el.src !== previous && el.complete && el.naturalWidth > 0 && { src: el.src, width: el.naturalWidth };
    },
    previousSrc ?? null,
    { timeout: 10_000 },
  );
  return handle.jsonValue();
}

before(async () => {
  shots = screenshotFolder();
  console.log(`# screenshots: ${shots.dir}`);
  server = await startBasalt();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (shots) console.log(`# screenshots: ${shots.dir}`);
});

/** A test step that, when it fails, prints where each device's page is and what it shows. */
function step(name, body) {
  test(name, STEP, async () => {
    try {
      await body();
    } catch (error) {
      await describePages();
      throw error;
    }
  });
}

async function describePages() {
  for (const [index, { page }] of devices.entries()) {
    if (page.isClosed()) continue;
    const text = await page
      .locator("body")
      .innerText({ timeout: 2_000 })
      .catch((error) => `(unreadable: ${error.message})`);
    console.log(`# device ${index + 1} at ${page.url()}:\n${text.slice(0, 1_000).replace(/^/gm, "#   ")}`);
  }
}

describe("the example app on Basalt", { timeout: 180_000 }, () => {
  let ada; // the first device
  let second; // a second device of the same person

  step("the start page links to sign-in, sign-up and magic link, and asks no outside host", async () => {
    ada = await device();
    const { page } = ada;
    await page.goto(server.url);
    for (const name of ["Sign in", "Sign up", "Sign in with a magic link"]) {
      await page.getByRole("link", { name: new RegExp(`^${name}`) }).first().waitFor();
    }
    const config = await page.evaluate(() => window.BASALT_CONFIG);
    assert.equal(config.envUrl, server.url);
    assert.match(config.clientKey, /\S+/);
    await shots.shoot(page, "home");
    ada.check();
  });

  step("sign-up sends a confirmation mail whose link lands on the profile, signed in", async () => {
    const { page } = ada;
    await page.getByRole("link", { name: /^Sign up/ }).click();
    await page.waitForURL(`${server.url}/sign-up`);
    await page.getByLabel("Name", { exact: true }).fill("Ada");
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByLabel("Password", { exact: true }).fill(firstPassword);
    await shots.shoot(page, "sign-up");
    await page.getByRole("button", { name: "Sign up" }).click();
    await page.getByText("We sent a confirmation email to").waitFor();
    await shots.shoot(page, "sign-up-check-inbox");

    const link = await mailedLink(email, "confirm", seenMail);
    const mailbox = await browser.newPage();
    await mailbox.goto(`${server.url}/_dev/mailbox`);
    await shots.shoot(mailbox, "dev-mailbox");
    await mailbox.close();

    await page.goto(link);
    await page.waitForURL(`${server.url}/profile`);
    await assertText(page.getByTestId("profile-name"), "Ada");
    await assertText(page.getByTestId("profile-email"), email);
    await page.getByTestId("avatar-placeholder").waitFor();
    await page.locator('[data-testid="session"][data-current="true"]').waitFor();
    await shots.shoot(page, "profile");
    ada.check();
  });

  step("a changed name is saved on Enter and still there after a reload", async () => {
    const { page } = ada;
    await page.getByRole("button", { name: "Edit name" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Ada Lovelace");
    await page.getByLabel("Name", { exact: true }).press("Enter");
    await assertText(page.getByTestId("profile-name"), "Ada Lovelace");
    await page.reload();
    await assertText(page.getByTestId("profile-name"), "Ada Lovelace");
    ada.check();
  });

  step("an uploaded PNG avatar renders from its publicPath; a second upload replaces it", async () => {
    const { page } = ada;
    const input = page.getByLabel("Profile picture file");
    await input.setInputFiles({ name: "red.png", mimeType: "image/png", buffer: solidPng(40, 40, [220, 38, 38]) });
    const first = await renderedAvatar(page);
    assert.ok(first.src.startsWith(`${server.url}/_storage/`), first.src);
    assert.equal(first.width, 40);
    await shots.shoot(page, "profile-avatar");

    await input.setInputFiles({ name: "blue.png", mimeType: "image/png", buffer: solidPng(64, 64, [37, 99, 235]) });
    const second = await renderedAvatar(page, first.src);
    assert.notEqual(second.src, first.src);
    assert.equal(second.width, 64);
    await eventually(async () => (await fetch(first.src)).status === 404, "the replaced picture is deleted");
    await page.reload();
    const reloaded = await renderedAvatar(page);
    assert.equal(reloaded.src, second.src);
    ada.check();
  });

  step("a second device's session is listed and signed out from the first; its next call lands on /sign-in", async () => {
    second = await device();
    await signIn(second.page, firstPassword);
    await second.page.waitForURL(`${server.url}/profile`);
    await assertText(second.page.getByTestId("profile-name"), "Ada Lovelace");

    const { page } = ada;
    await page.reload();
    const rows = page.getByTestId("session");
    await waitForCount(rows, 2);
    // Chromium on Linux: the browser, its system, and a computer rather than uap's "Other".
    await assertText(rows.first(), "on Linux");
    await assertText(rows.first(), "Device: Computer");
    await shots.shoot(page, "profile-two-sessions");
    await page.locator('[data-testid="session"][data-current="false"]').getByRole("button", { name: "Sign out" }).click();
    await waitForCount(rows, 1);
    assert.equal(await rows.first().getAttribute("data-current"), "true");

    // The second device still shows its profile; its next call finds the session gone.
    await second.page.getByRole("button", { name: "Edit name" }).click();
    await second.page.getByLabel("Name", { exact: true }).fill("Mallory");
    await second.page.getByLabel("Name", { exact: true }).press("Enter");
    await second.page.waitForURL(`${server.url}/sign-in`);
    assert.equal(await second.page.evaluate(() => localStorage.getItem("session")), null);
    await page.reload();
    await assertText(page.getByTestId("profile-name"), "Ada Lovelace");
    second.check();
    ada.check();
  });

  step("sign-out ends the session and the profile is private again", async () => {
    const { page } = ada;
    await signOut(page);
    await page.getByText("You are signed out.").waitFor();
    await page.goto(`${server.url}/profile`);
    await page.waitForURL(`${server.url}/sign-in`);
    ada.check();
  });

  step("a magic link from the mailbox signs in", async () => {
    const { page } = ada;
    await page.goto(`${server.url}/magic-link`);
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByRole("button", { name: "Send me a magic link" }).click();
    await page.getByText("a sign-in link is on its way").waitFor();
    await shots.shoot(page, "magic-link-sent");
    await page.goto(await mailedLink(email, "magic", seenMail));
    await page.waitForURL(`${server.url}/profile`);
    await assertText(page.getByTestId("profile-name"), "Ada Lovelace");
    await signOut(page);
    ada.check();
  });

  step("a password reset from the mailbox sets the new password", async () => {
    const { page } = ada;
    await page.getByRole("link", { name: "Forgot your password?" }).click();
    // The sign-in page has an Email field too: fill only once the new page has rendered.
    const send = page.getByRole("button", { name: "Send me a reset link" });
    await send.waitFor();
    await page.getByLabel("Email", { exact: true }).fill(email);
    await send.click();
    await page.getByText("a link to reset the password is on its way").waitFor();
    await page.goto(await mailedLink(email, "reset", seenMail));
    await page.waitForURL(`${server.url}/reset-password`);
    await page.getByLabel("New password", { exact: true }).fill(resetPassword);
    await page.getByLabel("Repeat the new password", { exact: true }).fill(resetPassword);
    await shots.shoot(page, "reset-password");
    await page.getByRole("button", { name: "Set the new password" }).click();
    await page.waitForURL(`${server.url}/sign-in`);
    await page.getByText("Your password is changed").waitFor();
    await signIn(page, resetPassword);
    await page.waitForURL(`${server.url}/profile`);
    ada.check();
  });

  step("a wrong password shows the server's message", async () => {
    const stranger = await device();
    const { page } = stranger;
    await page.goto(`${server.url}/sign-in`);
    const { clientKey } = await page.evaluate(() => window.BASALT_CONFIG);
    const direct = await fetch(`${server.url}/_api/rest/v1/auth/signin-email`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Client-Key": clientKey },
      body: JSON.stringify({ email, password: firstPassword }),
    });
    const expected = (await direct.json()).errors[0].message;
    await signIn(page, firstPassword);
    await assertText(page.getByRole("alert"), expected);
    assert.equal(page.url(), `${server.url}/sign-in`);
    await shots.shoot(page, "sign-in-wrong-password");
    stranger.check();
  });

  step("a used or forged link comes back to /sign-in with the server's error", async () => {
    const stranger = await device();
    const { page } = stranger;
    await page.goto(`${server.url}/_auth/email/magic?token=${"A".repeat(43)}`);
    await page.waitForURL(`${server.url}/sign-in`);
    await page.getByRole("alert").waitFor();
    await shots.shoot(page, "sign-in-bad-link");
    stranger.check();
  });

  step("on a phone screen the profile fits the width", async () => {
    const phone = await device({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const { page } = phone;
    await signIn(page, resetPassword);
    await page.waitForURL(`${server.url}/profile`);
    await renderedAvatar(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    await shots.shoot(page, "profile-phone");
    await page.goto(`${server.url}/sign-up`);
    await shots.shoot(page, "sign-up-phone");
    phone.check();
  });
});

async function assertText(locator, expected) {
  await locator.first().waitFor();
  const deadline = Date.now() + 10_000;
  let text = "";
  while (Date.now() < deadline) {
    text = (await locator.first().textContent()) ?? "";
    if (text.includes(expected)) return;
    await delay(100);
  }
  assert.fail(`expected ${JSON.stringify(expected)} in ${JSON.stringify(text)}`);
}

async function waitForCount(locator, count) {
  const deadline = Date.now() + 10_000;
  let seen = -1;
  while (Date.now() < deadline) {
    seen = await locator.count();
    if (seen === count) return;
    await delay(100);
  }
  assert.fail(`expected ${count} elements, saw ${seen}`);
}

async function eventually(check, what) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (await check()) return;
    await delay(100);
  }
  assert.fail(`not within 10 s: ${what}`);
}
