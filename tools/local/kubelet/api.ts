import { isApiException } from '../../../src/k8s/client.js';

/** The HTTP status of a failed API call (the error helpers are src/k8s/client.ts's). */
export function errorCode(err: unknown): number | undefined {
  return isApiException(err) ? err.code : undefined;
}

/** Kubernetes `Time` (RFC 3339, seconds). */
export function kubeTime(date = new Date()): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}

/** Kubernetes `MicroTime` (RFC 3339, microseconds), as Leases want it. */
export function kubeMicroTime(date = new Date()): string {
  return date.toISOString().replace(/Z$/, '000Z');
}
