import { fstatSync } from 'node:fs';

/**
 * Standard output for lines whose delivery matters: each write resolves once the output accepted
 * it, and a reader that went away (EPIPE, as after `| head -5`) ends the output quietly instead of
 * crashing the process.
 */
export class StdoutLines {
  /** The reader is gone: nothing more can be delivered. */
  closed = false;
  readonly isPipe: boolean;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {
    const stat = fstatSync(1);
    this.isPipe = stat.isFIFO() || stat.isSocket();
    out.on('error', () => (this.closed = true));
  }

  /** Writes `line`; resolves false when the output is closed and the line was not delivered. */
  write(line: string): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.out.write(line, (err) => {
        if (err) this.closed = true;
        resolve(!err);
      });
    });
  }
}
