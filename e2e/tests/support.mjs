// Starts the real `assent demo` binary and a headless Chromium for the end-to-end tests.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const screenshots = join(root, 'docs', 'screenshots');
const bin = process.env.ASSENT_BIN ?? join(root, 'target', 'debug', 'assent');

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Runs `assent demo` on a fresh data dir; resolves once it prints its key and link. */
export async function startDemo() {
  const dir = mkdtempSync(join(tmpdir(), 'assent-e2e-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(bin, ['demo', '--data-dir', dir, '--listen', `127.0.0.1:${port}`], {
    env: { ...process.env, ASSENT_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not start: ${out}`)), 30000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('Stop with Ctrl-C')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`demo exited with ${code}: ${out}`)));
  });
  const key = out.match(/Admin API key \(shown once\): (\S+)/)[1];
  const api = async (method, path, body, headers = {}) => {
    const r = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
  const link = async (subject, ttl) => (await api('POST', `/v1/subjects/${subject}/links`, ttl ? { ttl_seconds: ttl } : {})).body.url;
  const decision = async (subject, purpose) => (await api('GET', `/v1/decisions?subject=${subject}&purpose=${purpose}`)).body;
  // Waits for the graceful exit (the server folds its WAL into the database as it stops)
  // before removing the data directory under it.
  const stop = async () => {
    const exited = child.exitCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  return { base, key, api, link, decision, stop };
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
