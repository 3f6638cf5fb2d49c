// Drives headless Chromium over the DevTools protocol (no driver, no npm package: Node's own
// WebSocket), for tests/e2e/dashboard.rs.
//
//   node --experimental-websocket drive.mjs CHROMIUM PLAN.json
//
// PLAN: {"url": "http://..." or "file:///...", "offline": true?, "shots": "DIR", "steps": [{"page": "pipeline", "hash": "pipeline?as_of=...",
//         "shot": "pipeline-light", "dark": false, "post": {...}?}, ...]}
// Each step opens URL#hash, waits until the page says it is ready (`#page[data-ready]` names
// the page) or 20 s pass, and records the page's table cells, its console errors and uncaught
// exceptions; with `shot`, a PNG of the page in DIR. Prints {"steps": [...]} as JSON.

import { spawn } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [chromium, planPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, "utf8"));
const profile = mkdtempSync(join(tmpdir(), "dealledger-chromium-"));
const browser = spawn(chromium, [
  "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
  "--remote-debugging-port=0", `--user-data-dir=${profile}`, "--window-size=1200,1400", "about:blank",
], { stdio: ["ignore", "ignore", "pipe"] });

const endpoint = await new Promise((resolve, reject) => {
  let seen = "";
  const timer = setTimeout(() => reject(new Error(`no DevTools endpoint: ${seen.slice(-2000)}`)), 30000);
  browser.stderr.on("data", (chunk) => {
    seen += chunk;
    const match = seen.match(/DevTools listening on (ws:\/\/\S+)/);
    if (match) { clearTimeout(timer); resolve(match[1]); }
  });
});

const port = new URL(endpoint).port;
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const pageTarget = targets.find((t) => t.type === "page");
const socket = new WebSocket(pageTarget.webSocketDebuggerUrl);
await new Promise((resolve) => socket.addEventListener("open", resolve));

let nextId = 0;
const waiting = new Map();
const errors = [];
socket.addEventListener("message", (message) => {
  const data = JSON.parse(message.data);
  if (data.id !== undefined && waiting.has(data.id)) {
    const { resolve, reject } = waiting.get(data.id);
    waiting.delete(data.id);
    if (data.error) reject(new Error(JSON.stringify(data.error)));
    else resolve(data.result);
  } else if (data.method === "Runtime.exceptionThrown") {
    errors.push(data.params.exceptionDetails.exception?.description || data.params.exceptionDetails.text);
  } else if (data.method === "Runtime.consoleAPICalled" && data.params.type === "error") {
    errors.push(data.params.args.map((a) => a.value ?? a.description).join(" "));
  } else if (data.method === "Log.entryAdded" && data.params.entry.level === "error") {
    errors.push(`${data.params.entry.text} ${data.params.entry.url || ""}`.trim());
  }
});

function send(method, params = {}) {
  const id = ++nextId;
  socket.send(JSON.stringify({ id, method, params }));
  return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
}

async function evaluate(expression) {
  const result = await send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
  if (result.exceptionDetails) throw new Error(result.exceptionDetails.text);
  return result.result.value;
}

await send("Runtime.enable");
await send("Log.enable");
await send("Page.enable");

const out = [];
for (const step of plan.steps) {
  errors.length = 0;
  await send("Emulation.setEmulatedMedia", { features: [{ name: "prefers-color-scheme", value: step.dark ? "dark" : "light" }] });
  if (plan.offline) {
    await send("Network.enable");
    await send("Network.emulateNetworkConditions", { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  }
  if (step.navigate !== false) {
    // A served dashboard is URL/#page; a file is the file's URL and #page.
    const base = plan.url.startsWith("file:") ? plan.url : `${plan.url}/`;
    await send("Page.navigate", { url: `${base}#${step.hash}` });
  }
  if (step.evaluate) await evaluate(step.evaluate);
  const started = Date.now();
  let ready = null;
  while (Date.now() - started < 20000) {
    ready = await evaluate(`(() => { const p = document.getElementById("page"); return p && p.dataset.ready === ${JSON.stringify(step.page)} && !p.dataset.stale ? p.dataset.ready : null; })()`).catch(() => null);
    if (ready && (!step.until || await evaluate(step.until).catch(() => false))) break;
    ready = null;
    await new Promise((r) => setTimeout(r, 100));
  }
  const interactive_ms = Date.now() - started;
  const tables = await evaluate(`[...document.querySelectorAll("#page table")].map((t) => ({
      caption: t.caption ? t.caption.textContent : "",
      rows: [...t.tBodies[0].rows].map((r) => [...r.cells].map((c) => c.textContent)) }))`).catch(() => []);
  const text = await evaluate(`document.body.innerText`).catch(() => "");
  if (step.shot) {
    const { data } = await send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true });
    writeFileSync(join(plan.shots, `${step.shot}.png`), Buffer.from(data, "base64"));
  }
  out.push({ page: step.page, ready: ready !== null, interactive_ms, tables, text, errors: [...errors] });
}

socket.close();
browser.kill("SIGKILL");
// Exit only once the output is written: a pipe takes 64 KiB at a time, and exit would cut it.
process.stdout.write(`${JSON.stringify({ steps: out })}\n`, () => process.exit(0));
