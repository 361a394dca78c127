/** An error a user can act on: `status` is the HTTP status, `code` a stable machine-readable word. */
export class MqError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'MqError';
  }

  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}

export const badRequest = (code: string, message: string) => new MqError(400, code, message);
export const notFound = (code: string, message: string) => new MqError(404, code, message);
export const unavailable = (code: string, message: string) => new MqError(503, code, message);

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
