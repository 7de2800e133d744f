/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function median(values) {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}
