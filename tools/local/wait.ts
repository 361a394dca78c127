import { sleep } from '../../src/common/deadline.js';

/**
 * Polls `fn` every `everyMs` until it returns a value other than undefined or false, and returns
 * it; after `timeoutMs` throws, with the last error `fn` threw. `checkpoint` runs before each try
 * and its exception is not retried (e.g. a Ctrl-C).
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  everyMs = 250,
  checkpoint?: () => void,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    checkpoint?.();
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`,
      );
    }
    await sleep(everyMs);
  }
}
