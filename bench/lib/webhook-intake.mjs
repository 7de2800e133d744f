/**
 * Webhook intake: signed GitHub push deliveries sent over 16 keep-alive connections to a
 * repository's webhook URL, each verified, stored and answered (202), against the same requests
 * answered by `webhook` (adnanh/webhook, the Debian package) checking the same signature and
 * running nothing. Then every delivery again: each must be answered as a duplicate.
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { BenchError } from './bench-error.mjs';
import { now, sleep } from './clock.mjs';
import { summary } from './stats.mjs';

export const INTAKE_CONNECTIONS = 16;

/** A push payload of the size GitHub sends for a one-commit push (about 7 KiB). */
function pushBody() {
  const sha = 'a'.repeat(40);
  const commit = { id: sha, message: 'change', timestamp: new Date().toISOString(), author: { name: 'Bench', email: 'bench@example.com' }, added: ['README.md'], modified: [], removed: [] };
  const repository = { id: 1, name: 'site', full_name: 'acme/site', private: false, description: 'x'.repeat(4000), default_branch: 'main' };
  return JSON.stringify({ ref: 'refs/heads/main', before: 'b'.repeat(40), after: sha, created: false, deleted: false, forced: false, commits: [commit], head_commit: commit, repository, pusher: { name: 'bench' } });
}

/** `count` POSTs of `body` over INTAKE_CONNECTIONS connections; each answer must be one of `expect`. */
async function blast(url, body, headersFor, count, expect) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: INTAKE_CONNECTIONS });
  const target = new URL(url);
  const latencies = [];
  let next = 0;
  const one = (i) =>
    new Promise((resolve, reject) => {
      const started = now();
      const req = http.request({ agent, host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { ...headersFor(i), 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => {
          latencies.push(now() - started);
          if (!expect.includes(res.statusCode)) reject(new BenchError(`${url} answered ${res.statusCode} to delivery ${i}`));
          else resolve();
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  const t0 = now();
  await Promise.all(
    Array.from({ length: INTAKE_CONNECTIONS }, async () => {
      while (next < count) await one(next++);
    }),
  );
  const seconds = (now() - t0) / 1000;
  agent.destroy();
  return { perS: count / seconds, ...summary(latencies) };
}

const githubHeaders = (secret, body) => {
  const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
  return (i) => ({ 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': `bench-${i}`, 'x-hub-signature-256': signature });
};

/** Starts `webhook` with one hook that checks the signature and never runs its command. */
async function startPeer(dir, secret) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const hooks = [
    {
      id: 'push',
      'execute-command': '/bin/true',
      'trigger-rule-mismatch-http-response-code': 200,
      'trigger-rule': {
        and: [
          { match: { type: 'payload-hmac-sha256', secret, parameter: { source: 'header', name: 'X-Hub-Signature-256' } } },
          { match: { type: 'value', value: 'never', parameter: { source: 'header', name: 'X-Never' } } },
        ],
      },
    },
  ];
  const file = path.join(dir, 'hooks.json');
  await writeFile(file, JSON.stringify(hooks));
  const child = spawn('webhook', ['-hooks', file, '-ip', '127.0.0.1', '-port', String(port)], { stdio: 'ignore' });
  const failed = new Promise((_, reject) => child.once('error', (err) => reject(new BenchError(`cannot start webhook (the Debian package; scripts/install-host-packages.sh installs it): ${err.message}`))));
  for (let i = 0; i < 100; i++) {
    const up = await Promise.race([
      failed,
      fetch(`http://127.0.0.1:${port}/`).then(
        () => true,
        () => false,
      ),
    ]);
    if (up) return { url: `http://127.0.0.1:${port}/hooks/push`, stop: () => child.kill() };
    await sleep(50);
  }
  child.kill();
  throw new BenchError('webhook did not start listening');
}

/** Resolves with { furrow, duplicates, peer }: rates and latencies of the intake. */
export async function measureWebhookIntake(api, projectId, count, tmp, log) {
  const repo = await api('POST', `/api/v1/projects/${projectId}/repositories`, { name: 'intake', url: 'https://example.invalid/acme/site.git', polling: false });
  const hook = await api('GET', `/api/v1/repositories/${repo.id}/webhook`);
  const body = pushBody();
  const headers = githubHeaders(hook.secret, body);
  log(`webhook intake through Furrow: ${count} signed push deliveries over ${INTAKE_CONNECTIONS} connections`);
  const furrow = await blast(hook.url, body, headers, count, [202]);
  log(`webhook intake: the same ${count} deliveries again, each a duplicate`);
  const duplicates = await blast(hook.url, body, headers, count, [200]);
  const peer = await startPeer(tmp, hook.secret);
  try {
    log(`webhook intake peer: ${count} deliveries to webhook (adnanh/webhook), checking the signature, running nothing`);
    await blast(peer.url, body, headers, Math.min(200, count), [200]); // warm-up
    return { furrow, duplicates, peer: await blast(peer.url, body, headers, count, [200]) };
  } finally {
    peer.stop();
  }
}
