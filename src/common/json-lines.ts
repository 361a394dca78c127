/**
 * JSON bodies whose one large array has an element per line: what the SDK publishes and what a
 * fetch answers. V8 keeps a string over 128 KiB as a "large object", and on the benchmark machine
 * creating one cost up to 40x more per byte than a smaller string (docs/benchmarks.md), while these
 * bodies are often 0.1-1 MiB. A raw newline never occurs inside a JSON string, so a newline before
 * each element marks where it starts: the writer never builds the whole body as one string and the
 * reader parses it in chunks well under that size. To any other reader it is plain JSON. Pure.
 */

const NEWLINE = 0x0a;
/** Text parsed at once: under V8's large-object size even as a two-byte string. */
export const CHUNK_BYTES = 48 * 1024;

/**
 * `{"<key>":[\n<e1>,\n<e2>\n],"<field>":<JSON>...}`: the elements given as JSON text (or its UTF-8
 * bytes), then `fields` (undefined ones left out). Written into `alloc(size)` when given (a buffer
 * of at least `size` bytes; the body is its start).
 */
export function encodeJsonLines(
  key: string,
  elements: readonly (string | Buffer)[],
  fields: Record<string, unknown> = {},
  alloc: (size: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  const head = `{${JSON.stringify(key)}:[`;
  let tail = ']';
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined) tail += `,${JSON.stringify(name)}:${JSON.stringify(value)}`;
  }
  tail += '}';
  const sizes = elements.map((e) => (typeof e === 'string' ? Buffer.byteLength(e) : e.length));
  let size = Buffer.byteLength(head) + Buffer.byteLength(tail) + (elements.length > 0 ? 1 : 0);
  for (const s of sizes) size += s + 2;
  const body = alloc(size);
  let at = body.write(head, 0);
  elements.forEach((e, i) => {
    if (i > 0) body[at++] = 0x2c; // ','
    body[at++] = NEWLINE;
    if (typeof e === 'string') at += body.write(e, at);
    else {
      // TypedArray#set: Buffer#copy's argument handling cost several times more per element.
      body.set(e, at);
      at += e.length;
    }
  });
  if (elements.length > 0) body[at++] = NEWLINE;
  at += body.write(tail, at);
  return body.subarray(0, at);
}

/** JSON.parse of a body, in chunks when it is large and laid out as `encodeJsonLines` writes. */
export function parseJsonLines(body: Buffer): unknown {
  if (body.length <= CHUNK_BYTES) return JSON.parse(body.toString('utf8'));
  const first = body.indexOf(NEWLINE);
  const last = body.lastIndexOf(NEWLINE);
  const head = first > 0 ? body.toString('utf8', 0, first) : '';
  const key = /^\{"(\w+)":\[$/.exec(head)?.[1];
  if (key === undefined || last <= first) return JSON.parse(body.toString('utf8'));
  try {
    const envelope = JSON.parse(head + body.toString('utf8', last + 1)) as Record<string, unknown>;
    const elements: unknown[] = [];
    for (let start = first + 1; start < last;) {
      // Whole lines up to CHUNK_BYTES; a single longer element goes alone.
      let end = start + CHUNK_BYTES < last ? body.lastIndexOf(NEWLINE, start + CHUNK_BYTES) : last;
      if (end <= start) end = body.indexOf(NEWLINE, start);
      let text = body.toString('utf8', start, end);
      if (text.endsWith(',')) text = text.slice(0, -1);
      for (const e of JSON.parse(`[${text}]`) as unknown[]) elements.push(e);
      start = end + 1;
    }
    envelope[key] = elements;
    return envelope;
  } catch {
    // Not the layout after all: the whole text, with JSON.parse's own error if it is not JSON.
    return JSON.parse(body.toString('utf8'));
  }
}
