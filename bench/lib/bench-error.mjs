/** An expected failure: run.mjs prints its message alone, without a stack trace. */
export class BenchError extends Error {}
