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
  /** Whether the log so far ends with a newline (or is empty): where a marker may start. */
  private atLineStart = true;

  constructor(
    private readonly sink: OutputSink,
    secretValues: string[],
  ) {
    this.maskers = { stdout: new LogMasker(secretValues), stderr: new LogMasker(secretValues) };
  }

  write(data: Buffer, stream: OutputStream = 'stdout'): boolean {
    return this.send(this.maskers[stream].push(data));
  }

  once(event: 'drain', listener: () => void): unknown {
    return this.sink.once(event, listener);
  }

  /** Lets out what was held back: a step's output ends here. */
  endOfStep(): void {
    this.send(Buffer.concat([this.maskers.stdout.flush(), this.maskers.stderr.flush()]));
  }

  /**
   * Writes one of the runner's own lines (a step marker) on a line of its own, after what was held
   * back; it does not pass the maskers, so no part of it is held back with the next output.
   */
  mark(line: string): void {
    this.endOfStep();
    this.send(Buffer.from(this.atLineStart ? line : `\n${line}`));
  }

  private send(data: Buffer): boolean {
    if (data.length > 0) this.atLineStart = data[data.length - 1] === 0x0a;
    return this.sink.write(data);
  }
}
