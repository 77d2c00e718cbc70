// Shared by the browser test and the measurements: serves web/dist on 127.0.0.1 at a free port,
// launches Debian's chromium through playwright-core (never a downloaded browser) with a fresh
// profile, and bounds the whole run in time. Everything started here is stopped in `close`.

import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const dist = path.resolve(here, '..', 'web', 'dist');
export const artifacts = path.resolve(here, 'artifacts');

const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.json': 'application/json',
};

/** A static file server for `dist`, listening on a free port of 127.0.0.1. */
export async function serve() {
  if (!fs.existsSync(path.join(dist, 'index.html'))) {
    throw new Error(`${dist}/index.html is missing: run scripts/web.sh build first`);
  }
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://localhost');
    const relative = decodeURIComponent(url.pathname).replace(/^\/+/, '') || 'index.html';
    const file = path.resolve(dist, relative);
    if (!file.startsWith(dist) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      response.writeHead(404).end('not found');
      return;
    }
    response.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(response);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

/** Starts the server and the browser; returns a page and `close`. Gives up after `limitMs`. */
export async function start({ limitMs = 240_000, viewport = { width: 1280, height: 800 } } = {}) {
  const { server, url } = await serve();
  const browser = await launch({ limitMs, viewport, onClose: () => server.close() });
  return { ...browser, url };
}

/**
 * Launches headless chromium with a fresh profile; returns a page, the errors it logged, and
 * `close`, which also runs `onClose`. Gives up (closing everything, exit code 2) after `limitMs`.
 */
export async function launch({ limitMs = 240_000, viewport = { width: 1280, height: 800 }, onClose = async () => {} } = {}) {
  fs.mkdirSync(artifacts, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'dynamo-e2e-'));
  // A fresh profile per run; playwright takes it as the persistent context's directory.
  const context = await chromium.launchPersistentContext(profile, {
    viewport,
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('console', (message) => {
    // The page probes /api/cluster to offer Live mode; a plain file server answers 404, which
    // chromium logs as an error. That is the expected answer, not a fault of the page.
    const probe = (message.location().url ?? '').endsWith('/api/cluster');
    if (message.type() === 'error' && !probe) errors.push(message.text());
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    await context.close().catch(() => {});
    await onClose();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  const timer = setTimeout(async () => {
    console.error(`e2e: gave up after ${limitMs / 1000} s`);
    await close();
    process.exit(2);
  }, limitMs);
  return { page, context, errors, close };
}

/** Sets a range input the way a person dragging it would (an `input` event). */
export async function setRange(page, testid, value) {
  await page.locator(`[data-testid="${testid}"]`).evaluate((element, value) => {
    element.value = String(value);
    element.dispatchEvent(new Event('input', { bubbles: true }));
  }, value);
}

export async function shot(page, name) {
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file });
  console.log(`  screenshot ${path.relative(process.cwd(), file)}`);
}

/** Runs one named step of a test and prints how long it took. */
export async function step(title, body) {
  const began = Date.now();
  process.stdout.write(`- ${title} ... `);
  await body();
  console.log(`ok (${Date.now() - began} ms)`);
}

/** Waits until one of `locator`'s elements shows text matching `pattern`. */
export async function waitForText(locator, pattern, timeout = 30_000) {
  await locator.filter({ hasText: pattern }).first().waitFor({ timeout });
}
