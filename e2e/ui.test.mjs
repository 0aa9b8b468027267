// The web UI as a person uses it, in headless Chromium: sign in, declare from the big red
// button, change the severity, add a note and see it on the timeline (also when it arrives
// from elsewhere while the page is open), sign out. Screenshots go to $KLAXON_ARTIFACTS.
//
// Needs: KLAXON_BIN (the klaxon binary), Chromium at $CHROMIUM or /usr/bin/chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";

const bin = process.env.KLAXON_BIN;
const artifacts = process.env.KLAXON_ARTIFACTS || join(process.cwd(), "artifacts");
const password = randomBytes(12).toString("hex");
let dir, server, base, browser;

// Klaxon refuses KLAXON_* variables it does not know, such as this harness's own.
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("KLAXON_")));
}

function waitForLine(stream, pattern, ms) {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${ms} ms; saw:\n${seen}`)), ms);
    stream.on("data", (chunk) => {
      seen += chunk.toString();
      const m = seen.match(pattern);
      if (m) { clearTimeout(timer); resolve(m); }
    });
  });
}

before(async () => {
  assert.ok(bin, "set KLAXON_BIN to the klaxon binary");
  mkdirSync(artifacts, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), "klaxon-e2e-"));
  server = spawn(bin, ["serve"], {
    cwd: dir,
    env: { ...cleanEnv(), KLAXON_SERVER_LISTEN: "127.0.0.1:0", KLAXON_AUTH_ADMIN_PASSWORD: password, KLAXON_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const m = await waitForLine(server.stdout, /listening on (http:\/\/[0-9.:]+)/, 30000);
  base = m[1];
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function signIn(page) {
  await page.goto(base + "/");
  assert.match(page.url(), /\/login\?next=%2F$/);
  await page.getByLabel("Login").fill("admin");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(base + "/");
}

test("a wrong password is refused with a clear message", async () => {
  const page = await browser.newPage();
  await page.goto(base + "/login");
  await page.getByLabel("Login").fill("admin");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "That login and password do not match." }).waitFor();
  await page.close();
});

test("declare from the big red button, change severity, add notes, sign out", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await signIn(page);
  await page.getByText("Nothing is on fire.").waitFor();

  await page.getByRole("link", { name: "Declare an incident" }).click();
  await page.waitForURL(base + "/declare");
  await page.getByLabel("What is broken?").fill("Checkout is down");
  await page.getByRole("button", { name: "Declare" }).click();
  await page.waitForURL(base + "/incidents/INC-1");
  assert.equal(await page.locator("h1").textContent(), "Checkout is down");
  assert.equal((await page.locator("#severity").textContent()).trim(), "No severity");
  assert.equal((await page.locator("#lead").textContent()).trim(), "Administrator");

  await page.getByLabel("Severity", { exact: true }).selectOption("SEV1");
  await page.getByRole("button", { name: "Set severity" }).click();
  await page.waitForURL(base + "/incidents/INC-1");
  assert.equal((await page.locator("#severity").textContent()).trim(), "SEV1");
  await page.locator("#timeline li", { hasText: "set the severity to SEV1" }).waitFor();

  await page.getByLabel("Add a note").fill("Rolled back the deploy of v42");
  await page.getByRole("button", { name: "Add note" }).click();
  await page.waitForURL(base + "/incidents/INC-1");
  await page.locator("#timeline li.note_added", { hasText: "Rolled back the deploy of v42" }).waitFor();

  // A note added elsewhere (the API) appears on the open page without a reload.
  const token = execFileSync(bin, ["token", "create", "--name", "e2e", "--role", "responder"], { cwd: dir, env: cleanEnv() }).toString().split("\n")[0];
  const res = await fetch(`${base}/api/v1/incidents/INC-1/notes`, {
    method: "POST",
    headers: { "Authorization": `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ text: "Error rate back to normal" }),
  });
  assert.equal(res.status, 201);
  await page.locator("#timeline li.is-new", { hasText: "Error rate back to normal" }).waitFor({ timeout: 15000 });
  await page.screenshot({ path: join(artifacts, "incident.png"), fullPage: true });

  // The playbooks this incident set going: the severity nudge was dropped once SEV1 was set,
  // and status updates are now due every 15 minutes.
  await page.locator("#playbooks", { hasText: "status-updates-sev1" }).waitFor();
  await page.getByRole("link", { name: "Playbooks" }).click();
  await page.getByRole("heading", { name: "severity-nudge" }).waitFor();
  await page.screenshot({ path: join(artifacts, "playbooks.png"), fullPage: true });

  await page.getByRole("link", { name: "Dashboard" }).click();
  await page.getByRole("link", { name: /INC-1 Checkout is down/ }).waitFor();
  await page.screenshot({ path: join(artifacts, "dashboard.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(artifacts, "dashboard-phone.png"), fullPage: true });

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(base + "/login");
  await page.goto(base + "/");
  assert.match(page.url(), /\/login/);
  await page.close();
});
