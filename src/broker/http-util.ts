import type { IncomingMessage, ServerResponse } from 'node:http';
import { MqError } from '../common/errors.js';

/**
 * Reads the whole body, refusing with 413 once it passes `limit` bytes (at once when the declared
 * Content-Length does), and with 408 when the client sends nothing for `idleTimeoutMs`: a client
 * that trickles its body must not hold what the broker reserved for it.
 */
export function readBody(req: IncomingMessage, limit: number, idleTimeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () =>
      new MqError(413, 'request_too_large', `request body is larger than ${limit} bytes`);
    if (Number(req.headers['content-length']) > limit) {
      // Read and dropped, so the client sees the answer rather than a reset connection.
      req.resume();
      return reject(tooLarge());
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (err: MqError) => {
      clearTimeout(idle);
      req.removeAllListeners('data');
      req.resume();
      reject(err);
    };
    const idle = setTimeout(
      () => fail(new MqError(408, 'request_timeout', `no request body bytes for ${idleTimeoutMs} ms`)),
      idleTimeoutMs,
    );
    req.on('data', (chunk: Buffer) => {
      idle.refresh();
      size += chunk.length;
      if (size > limit) return fail(tooLarge());
      chunks.push(chunk);
    });
    req.on('end', () => {
      clearTimeout(idle);
      resolve(Buffer.concat(chunks));
    });
    req.on('close', () => {
      if (!req.complete) fail(new MqError(400, 'request_aborted', 'the client closed the request midway'));
    });
    req.on('error', (err) => {
      clearTimeout(idle);
      reject(err);
    });
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendJsonBytes(res, status, JSON.stringify(body));
}

/** An answer already encoded as JSON; `sent` runs once the socket has taken all of it. */
export function sendJsonBytes(
  res: ServerResponse,
  status: number,
  json: string | Buffer,
  sent?: () => void,
): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
  res.end(json, sent);
}

/**
 * Buffers for large answer bodies (fetch answers of up to a few MiB), used again once the socket
 * has taken an answer. A new buffer of 1 MiB per answer cost more CPU in page faults than writing
 * the answer into it, and its memory outside the V8 heap added to the garbage collector's work.
 */
export class BodyBuffers {
  private readonly free: Buffer[] = [];

  constructor(
    /** Smaller bodies come from Buffer.allocUnsafe (Node's shared pool). */
    private readonly minBytes = 64 * 1024,
    /** Buffers kept for reuse at most. */
    private readonly keep = 8,
    /** New buffers are rounded up to a multiple of this, so slightly larger answers fit too. */
    private readonly step = 256 * 1024,
  ) {}

  /** A buffer of at least `size` bytes. Give it back (`give`) once nothing refers to it any more. */
  take(size: number): Buffer {
    if (size < this.minBytes) return Buffer.allocUnsafe(size);
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i];
      if (b.length >= size && (best < 0 || b.length < this.free[best].length)) best = i;
    }
    if (best >= 0) return this.free.splice(best, 1)[0];
    return Buffer.allocUnsafeSlow(Math.ceil(size / this.step) * this.step);
  }

  give(buffer: Buffer): void {
    if (buffer.length < this.minBytes) return;
    if (this.free.length >= this.keep) {
      // Full: the smallest goes, if this one is larger.
      let smallest = 0;
      for (let i = 1; i < this.free.length; i++)
        if (this.free[i].length < this.free[smallest].length) smallest = i;
      if (this.free[smallest].length >= buffer.length) return;
      this.free.splice(smallest, 1);
    }
    this.free.push(buffer);
  }

  /** Bytes held for reuse. */
  get heldBytes(): number {
    return this.free.reduce((n, b) => n + b.length, 0);
  }
}

export function sendError(res: ServerResponse, err: MqError): void {
  sendJson(res, err.status, err.toJSON());
}
