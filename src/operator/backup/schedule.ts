import { Cron } from 'croner';

const NICKNAMES = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@hourly']);

export type Schedule = { ok: true; next(after: Date): Date | null } | { ok: false; error: string };

/**
 * `spec.backup.schedule`: a cron expression in UTC, 5 fields (minute hour day-of-month month
 * day-of-week), or 6 with a leading seconds field, or a nickname (`@daily`). Parsed by croner; a
 * bad one is a value with the reason, never a throw. Pure.
 */
export function parseSchedule(expression: string): Schedule {
  const text = expression.trim();
  const fields = text.split(/\s+/).length;
  if (!NICKNAMES.has(text.toLowerCase()) && fields !== 5 && fields !== 6)
    return {
      ok: false,
      error: `schedule "${expression}" has ${fields} field(s); a cron expression has 5 (minute hour day-of-month month day-of-week), or 6 with seconds first, e.g. "0 3 * * *"`,
    };
  try {
    const cron = new Cron(text, { paused: true, timezone: 'UTC' });
    if (!cron.nextRun(new Date())) return { ok: false, error: `schedule "${expression}" never runs` };
    return { ok: true, next: (after) => cron.nextRun(after) };
  } catch (err) {
    return {
      ok: false,
      error: `schedule "${expression}" is not a cron expression: ${(err as Error).message}`,
    };
  }
}
