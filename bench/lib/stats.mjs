/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function median(values) {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

/** Count, min, p50, p90, p99 and max of unordered samples. */
export function summary(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, min: s[0], p50: percentile(s, 0.5), p90: percentile(s, 0.9), p99: percentile(s, 0.99), max: s[s.length - 1] };
}
