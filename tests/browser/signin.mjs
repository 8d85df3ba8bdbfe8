// The dashboard's sign-in and sessions page in a real browser (Debian's chromium):
//   node signin.mjs BASE_URL KEY SESSION_ID ARTIFACT_DIR VIEWER_KEY
// A wrong key gets the API's message next to the field; the right one shows the team's
// sessions (SESSION_ID among them); a reload keeps the session (the cookie); on the agents
// page a bad name gets the API's message next to the form, a shell agent is made and deleted;
// signing out shows the form again. A viewer's agents page has no write control. Any
// Content-Security-Policy violation or page error fails it.
// Prints one JSON line of figures; exits non-zero with the reason on any failure.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, key, session, artifacts, viewerKey] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const problems = [];
try {
  const page = await browser.newPage();
  // Expected answers (401 before signing in, the wrong key's) log as failed loads; a CSP
  // violation or a script error is a failure.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));

  await page.goto(base + "/");
  await page.waitForSelector("input#key");
  await page.screenshot({ path: join(artifacts, "signin.png") });
  await page.fill("input#key", "pdk_not-a-key-of-this-install-0123456789abcdef");
  await page.click("button[type=submit]");
  const error = await page.waitForSelector(".error");
  const message = await error.textContent();
  if (!message.includes("not valid")) throw new Error(`the wrong key's message is "${message}"`);

  const started = Date.now();
  await page.fill("input#key", key);
  await page.click("button[type=submit]");
  await page.waitForSelector(`tr[data-session="${session}"]`);
  const signInToTableMs = Date.now() - started;
  await page.screenshot({ path: join(artifacts, "sessions.png"), fullPage: true });
  const cookies = await page.context().cookies();
  const cookie = cookies.find((c) => c.name === "paddock_session");
  if (!cookie || !cookie.httpOnly || cookie.sameSite !== "Strict") throw new Error(`cookie: ${JSON.stringify(cookie)}`);
  if (cookie.value.includes(key)) throw new Error("the cookie holds the key");
  if (await page.evaluate(() => document.cookie.includes("paddock_session"))) throw new Error("the page script reads the cookie");

  // A reload: still signed in; the time to the sessions table from navigation.
  await page.reload();
  await page.waitForSelector(`tr[data-session="${session}"]`);
  const paint = await page.evaluate(() => {
    const fcp = performance.getEntriesByName("first-contentful-paint")[0];
    return { first_contentful_paint_ms: fcp ? Math.round(fcp.startTime) : null, table_ms: Math.round(performance.now()) };
  });

  // Agents: the API's message for a bad name next to the form; a shell agent made, then deleted.
  await page.click("button.tab >> text=Agents");
  await page.waitForSelector("table.agents");
  // The harness picker is fed by /api/plugins.
  await page.waitForFunction(() =>
    [...document.querySelectorAll("select#agent-harness option")].some((o) => o.value === "shell"),
  );
  await page.click("text=Create agent");
  const bad = await (await page.waitForSelector("form.agent-form .error")).textContent();
  if (!bad.includes("'name'")) throw new Error(`the empty name's message is "${bad}"`);
  await page.fill("input#agent-name", "from-the-browser");
  await page.selectOption("select#agent-harness", "shell");
  await page.click("text=Create agent");
  await page.waitForSelector('tr[data-agent="from-the-browser"]');
  await page.screenshot({ path: join(artifacts, "agents.png"), fullPage: true });
  await page.click('tr[data-agent="from-the-browser"] >> text=Delete');
  await page.waitForSelector('tr[data-agent="from-the-browser"]', { state: "detached" });

  await page.click("text=Sign out");
  await page.waitForSelector("input#key");

  // A viewer: the same pages, no write control.
  await page.fill("input#key", viewerKey);
  await page.click("button[type=submit]");
  await page.waitForSelector(`tr[data-session="${session}"]`);
  await page.click("button.tab >> text=Agents");
  await page.waitForSelector("table.agents");
  if ((await page.$("form.agent-form")) || (await page.$("text=Delete")))
    throw new Error("a viewer sees write controls");
  await page.click("text=Sign out");
  await page.waitForSelector("input#key");
  if (problems.length) throw new Error(problems.join("\n"));
  console.log(JSON.stringify({ ok: true, sign_in_to_table_ms: signInToTableMs, reload: paint }));
} finally {
  await browser.close();
}
