/**
 * Which printed messages a reader has certainly taken. A line written to a regular file or a
 * terminal is delivered once the write returns. A line written into a pipe first sits in the
 * kernel's pipe buffer and then in the reader's own read-ahead, and a reader that exits (`| head
 * -5`) discards both: such a line is certainly taken only once more than those two can hold was
 * written after it. Pure.
 */
export class DeliveryTracker {
  /** Bytes accepted by the output so far. */
  private written = 0;
  /** Lines written but not yet certainly read, oldest first: the offset just past each. */
  private readonly unread: { shard: string; id: number; end: number }[] = [];
  private delivered: Record<string, number> = {};

  /** @param bufferBytes what the output may hold unread: 0 for a file, PIPE_BUFFER_BYTES for a pipe. */
  constructor(private readonly bufferBytes: number) {}

  /** A message's line (of `bytes` bytes) was accepted by the output. */
  wrote(shard: string, id: number, bytes: number): void {
    this.written += bytes;
    this.unread.push({ shard, id, end: this.written });
    while (this.unread.length > 0 && this.written - this.unread[0].end >= this.bufferBytes) {
      const line = this.unread.shift()!;
      this.delivered[line.shard] = line.id;
    }
  }

  /** The output was closed normally (end of the run): the reader gets everything written. */
  flushed(): void {
    for (const line of this.unread.splice(0)) this.delivered[line.shard] = line.id;
  }

  /** Per shard, the highest id certainly read and not handed out by an earlier call. */
  takeDelivered(): Record<string, number> {
    const offsets = this.delivered;
    this.delivered = {};
    return offsets;
  }
}

/**
 * What a pipe and its reader may hold unprocessed: Linux's default pipe size (64 KiB, unless the
 * reader enlarged it) plus a reader's read-ahead (GNU head reads 8 KiB at a time, Node 64 KiB).
 */
export const PIPE_BUFFER_BYTES = 128 * 1024;
