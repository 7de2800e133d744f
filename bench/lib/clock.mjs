import { BenchError } from './bench-error.mjs';

/** Wall clock in ms with sub-ms precision (comparable with bash's $EPOCHREALTIME). */
export const now = () => performance.timeOrigin + performance.now();

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** "1712345678.123456" (seconds) -> ms since the epoch. */
export function epochRealtimeMs(text) {
  const m = /^(\d+)[.,](\d{6})$/.exec(text.trim());
  if (!m) throw new BenchError(`unexpected $EPOCHREALTIME value ${JSON.stringify(text)}`);
  return Number(m[1]) * 1000 + Number(m[2]) / 1000;
}

/** True when `promise` settles within `ms`, false otherwise; leaves no timer behind. */
export async function within(promise, ms) {
  let timer;
  const expired = new Promise((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}
