/** What a progress indicator writes to: a stream that may be a terminal. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

/**
 * A one-line progress bar (known total) or spinner (unknown total) redrawn in place on a terminal,
 * at most every 100 ms. On anything but a terminal it writes nothing, so a script reading the
 * output never sees it; callers print their result lines as usual.
 */
export class Progress {
  private done = 0;
  private lastDraw = 0;
  private frame = 0;
  private readonly started = Date.now();
  private readonly active: boolean;
  private drawn = false;

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    private readonly stream: ProgressStream = process.stderr,
  ) {
    this.active = stream.isTTY === true;
  }

  /** Adds `n` units of work done (0 just keeps a spinner turning). */
  advance(n = 0, detail?: string): void {
    this.done += n;
    if (!this.active) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && this.drawn) return;
    this.lastDraw = now;
    this.draw(detail);
  }

  /** Clears the line, so the next output starts on a clean one. */
  finish(): void {
    if (!this.active || !this.drawn) return;
    this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  private draw(detail?: string): void {
    // A pseudo-terminal without a size reports 0 columns.
    const width = this.stream.columns || 80;
    this.drawn = true;
    const line =
      this.total === undefined || this.total <= 0
        ? spinnerLine(this.label, this.frame++, Date.now() - this.started, this.done, detail)
        : barLine(this.label, this.done, this.total, width, detail);
    this.stream.write(`\r\x1b[2K${line.slice(0, width - 1)}`);
  }
}

const SPINNER = ['|', '/', '-', '\\'];

/** `label [#######.......]  45%  450/1000 detail`, fitted to `width`. Pure. */
export function barLine(label: string, done: number, total: number, width: number, detail?: string): string {
  const fraction = Math.min(1, done / total);
  const tail = ` ${String(Math.floor(fraction * 100)).padStart(3)}%  ${done}/${total}${detail ? ` ${detail}` : ''}`;
  const barWidth = Math.max(10, Math.min(40, width - label.length - tail.length - 4));
  const filled = Math.round(fraction * barWidth);
  return `${label} [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]${tail}`;
}

/** `label |  12.3s  450 detail` for work of unknown length. Pure. */
export function spinnerLine(label: string, frame: number, elapsedMs: number, done: number, detail?: string) {
  const seconds = (elapsedMs / 1000).toFixed(1);
  return `${label} ${SPINNER[frame % SPINNER.length]} ${seconds}s${done > 0 ? `  ${done}` : ''}${detail ? `  ${detail}` : ''}`;
}
