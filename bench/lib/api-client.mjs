import { BenchError } from './bench-error.mjs';
import { sleep } from './clock.mjs';

const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'timed_out']);

/** `api(method, route, body)`: parsed JSON (or text) of a 2xx answer; anything else is a BenchError. */
export function apiClient(baseUrl, token) {
  return async function api(method, route, body) {
    let res;
    try {
      res = await fetch(`${baseUrl}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new BenchError(`${method} ${route} failed: ${err.cause?.message ?? err.message}`);
    }
    const text = await res.text();
    if (!res.ok) throw new BenchError(`${method} ${route} answered ${res.status}: ${text.slice(0, 500)}`);
    return res.headers.get('content-type')?.includes('application/json') ? JSON.parse(text) : text;
  };
}

/** Polls the run until it reaches a terminal status; resolves with the run. */
export async function waitForRun(api, runId, { timeoutMs, intervalMs }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await api('GET', `/api/v1/runs/${runId}`);
    if (TERMINAL.has(run.status)) return run;
    if (Date.now() > deadline) throw new BenchError(`run ${runId} still ${run.status} after ${timeoutMs / 1000} s`);
    await sleep(intervalMs);
  }
}

/** Status, exit code and log tail of a run, for error messages; never throws. */
export async function describeRun(api, runId) {
  try {
    const run = await api('GET', `/api/v1/runs/${runId}`);
    const jobs = await api('GET', `/api/v1/runs/${runId}/jobs`);
    const log = await api('GET', `/api/v1/runs/${runId}/log`);
    const job = jobs.items[0] ?? {};
    return `run status ${run.status}, job exit code ${job.exitCode}, error ${job.error}; log:\n${String(log).slice(-2000)}`;
  } catch (err) {
    return `(could not describe the run: ${err.message})`;
  }
}
