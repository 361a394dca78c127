import winston from 'winston';

/** Keys whose values never reach a log line, whatever object they sit in. */
const SECRET_KEYS = /pass(word)?|secret|token|authorization/i;

const redactSecrets = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (SECRET_KEYS.test(key)) info[key] = '[redacted]';
  }
  return info;
});

export type Logger = winston.Logger;

/** A structured JSON logger; `component` names the subsystem in every line. */
export function createLogger(component: string, level = process.env.MQ_LOG_LEVEL ?? 'info'): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { component },
    format: winston.format.combine(redactSecrets(), winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}
