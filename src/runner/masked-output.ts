import { LogMasker } from '../domain/log-masking.js';
import type { OutputSink, OutputStream } from './executors/executor.js';

/**
 * A job's output on its way to the log sink with every secret value (and its encoded forms)
 * replaced by `***` before it leaves the runner. A value split across writes is still found: the
 * masker holds back a possible beginning until the next write or `endOfStep`. Each stream has its
 * own masker, so output on stderr between the halves of a value on stdout (or the other way round)
 * cannot unmask it.
 */
export class MaskedOutput implements OutputSink {
  private readonly maskers: Record<OutputStream, LogMasker>;

  constructor(
    private readonly sink: OutputSink,
    secretValues: string[],
  ) {
    this.maskers = { stdout: new LogMasker(secretValues), stderr: new LogMasker(secretValues) };
  }

  write(data: Buffer, stream: OutputStream = 'stdout'): boolean {
    return this.sink.write(this.maskers[stream].push(data));
  }

  once(event: 'drain', listener: () => void): unknown {
    return this.sink.once(event, listener);
  }

  /** Lets out what was held back: a step's output ends here. */
  endOfStep(): void {
    this.sink.write(Buffer.concat([this.maskers.stdout.flush(), this.maskers.stderr.flush()]));
  }
}
