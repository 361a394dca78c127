import type { IncomingMessage, ServerResponse } from 'node:http';
import { MqError } from '../common/errors.js';
import type { ReusableBuffers } from '../common/reusable-buffers.js';

/**
 * Reads the whole body, refusing with 413 once it passes `limit` bytes (at once when the declared
 * Content-Length does), and with 408 when the client sends nothing for `idleTimeoutMs`: a client
 * that trickles its body must not hold what the broker reserved for it.
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  idleTimeoutMs: number,
  buffers?: ReusableBuffers,
): Promise<Buffer> {
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
    // With a declared length, chunks are copied into a buffer used again (the caller gives it back).
    const declared = Number(req.headers['content-length']);
    const into = buffers && declared > 0 ? buffers.take(declared) : undefined;
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
      if (!into) chunks.push(chunk);
      // More than Content-Length: Node's HTTP parser never delivers it.
      else if (size > declared) return fail(tooLarge());
      else into.set(chunk, size - chunk.length);
    });
    req.on('end', () => {
      clearTimeout(idle);
      resolve(into ? into.subarray(0, size) : Buffer.concat(chunks));
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

/** A media type as a header names it, without parameters, lower case. */
const bareType = (value: string) => value.split(';', 1)[0].trim().toLowerCase();

/** The request's Content-Type without parameters, lower case ('' when there is none). */
export function mediaType(req: IncomingMessage): string {
  return bareType(req.headers['content-type'] ?? '');
}

/** Whether the request's Accept header names `type` (exactly; no wildcards). */
export function accepts(req: IncomingMessage, type: string): boolean {
  const accept = req.headers.accept;
  return accept !== undefined && accept.split(',').some((t) => bareType(t) === type);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendBytes(res, status, 'application/json', JSON.stringify(body));
}

/** An answer already encoded; `sent` runs once the socket has taken all of it. */
export function sendBytes(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string | Buffer,
  sent?: () => void,
): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body, sent);
}

export function sendError(res: ServerResponse, err: MqError): void {
  sendJson(res, err.status, err.toJSON());
}
