import { LogMasker } from '../domain/log-masking.js';
import type { OutputSink } from './executors/executor.js';

/**
 * A job's output on its way to the log sink with every secret value (and its encoded forms)
 * replaced by `***` before it leaves the runner. A value split across writes is still found: the
 * masker holds back a possible beginning until the next write or `endOfStep`.
 */
export class MaskedOutput implements OutputSink {
  private readonly masker: LogMasker;

  constructor(
    private readonly sink: OutputSink,
    secretValues: string[],
  ) {
    this.masker = new LogMasker(secretValues);
  }

  write(data: Buffer): boolean {
    return this.sink.write(this.masker.push(data));
  }

  once(event: 'drain', listener: () => void): unknown {
    return this.sink.once(event, listener);
  }

  /** Lets out what was held back: a step's output ends here. */
  endOfStep(): void {
    this.sink.write(this.masker.flush());
  }
}
