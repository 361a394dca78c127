#!/usr/bin/env node
import { createReadStream, fstatSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Admin, Consumer, MqClientError, Producer } from '../client/index.js';
import { Transport, type TransportOptions, groupPath } from '../client/transport.js';
import { readCaFile, readPemFile } from './ca-file.js';
import { DeliveryTracker, PIPE_BUFFER_BYTES } from './delivered.js';
import { StdoutLines } from './stdout-lines.js';
import { RESET_OPTIONS, groupsTable, parseResetFlags } from './groups.js';
import { Progress } from './progress.js';
import { formatTable } from './table.js';

const HELP = `mqctl: produce to and consume from a mysqlmq cluster

Usage: mqctl [global flags] <command> [flags]

Global flags:
  --brokers URLS   comma-separated broker URLs (env MQ_BROKERS; default http://127.0.0.1:8080)
  --token TOKEN    bearer token when the brokers require one (env MQ_TOKEN)
  --ca FILE        for https:// brokers: the CA certificate (PEM) to verify them with (env MQ_CA;
                   a cluster's is ca.crt of Secret NAME-broker-tls); default: the public CAs
  --server-name N  for https:// brokers reached by an address their certificate does not name
                   (pod IPs): the name to check instead, e.g. NAME-broker.NAMESPACE.svc (env MQ_SERVER_NAME)
  --cert FILE      with --key FILE: a client certificate (PEM) to authenticate with where the brokers
                   take them; a token, if also given, decides (tls.crt and tls.key of Secret
                   NAME-user-<name>; env MQ_CERT, MQ_KEY)
  -h, --help       this help; "mqctl <command> --help" explains a command

Commands:
  topics                      list topics
  topics create NAME          create a topic on every shard (--max-deliveries N: dead letters)
  produce TOPIC [MESSAGE...]  publish the messages, or one per line of standard input
  consume TOPIC --group G     print messages as JSON lines and commit them
  offsets TOPIC --group G     committed offset, newest id, lag, missed and owner per shard
  groups list TOPIC           consumer groups of a topic: members, committed, lag per shard
  groups reset TOPIC GROUP    move a group (--to-earliest, --to-latest, --to-timestamp, --to-offsets)
  groups delete TOPIC GROUP   forget a group's offsets on every shard
  status                      each broker's view of the shards (writable, readable, errors)
`;

const COMMAND_HELP: Record<string, string> = {
  topics: `mqctl topics [create NAME [--max-deliveries N]]
  Without arguments, lists the topics known to the shards. "create NAME" creates one; names match
  ^[a-z0-9][a-z0-9._-]{0,127}$.
  --max-deliveries N   a message a consumer's handler failed on (or fetched without committing)
                       N times is copied to NAME.dlq and skipped`,
  produce: `mqctl produce TOPIC [MESSAGE...] [--file PATH] [--batch N]
  Publishes each MESSAGE, or each line of PATH or of standard input when none is given, and prints
  how many were acknowledged. A message is acknowledged once committed on a primary and its standby.
  On a terminal a progress bar shows how far it got (a bar for --file or stdin redirected from a
  file, a counter for a pipe).
  --file PATH  one message per line of PATH
  --batch N    messages per publish request when reading lines (default 500)`,
  consume: `mqctl consume TOPIC --group G [--max N] [--follow] [--wait-ms MS] [--no-commit]
  Prints messages as JSON lines {"shard","id","publishedAt","value"} and commits them for group G,
  so the next consumer of G starts after them. Only what was written out is committed; into a pipe,
  only what its reader certainly took (a reader that quits, as "| head -5", does not consume the
  lines it never read: the group gets them again). To take exactly N messages, use --max N.
  --group G      consumer group (required)
  --max N        stop after N messages (default: until no message arrives for one wait)
  --follow       keep waiting for new messages until Ctrl-C
  --wait-ms MS   long-poll wait per fetch (default 1000)
  --no-commit    read without committing (the group will see the messages again)`,
  offsets: `mqctl offsets TOPIC --group G
  Shows, per shard, the group's committed offset, the newest message id, the lag (messages kept
  that the group has not committed), MISSED (messages after its committed offset that retention
  deleted before the group read them: it resumes at the oldest kept one) and which consumer holds
  the shard.`,
  groups: `mqctl groups list TOPIC [--json]
mqctl groups reset TOPIC GROUP (--to-earliest | --to-latest | --to-timestamp ISO | --to-offsets shard-0=41,...) [--force]
mqctl groups delete TOPIC GROUP [--force]
  list    each group's members (consumers holding a shard now) and, per shard, the committed
          offset, newest id, lag and owner; --json prints the broker's answer
  reset   moves the group: to each shard's oldest kept message, past its newest, to the first
          message published at or after a time (ISO 8601, e.g. 2026-12-04T15:00:00Z), or to the
          given ids (the group next reads the message after the id; unnamed shards stay)
  delete  forgets the group's offsets; a consumer that comes back starts from the beginning
  Reset and delete are refused while consumers of the group hold shards (stop them first), unless
  --force: their uncommitted work is then discarded and they continue from the new offsets.
  Both need every shard's primary up.`,
  status: `mqctl status
  Asks every broker for its routing version and its view of each shard.`,
};

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      brokers: { type: 'string' },
      token: { type: 'string' },
      ca: { type: 'string' },
      'server-name': { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      group: { type: 'string' },
      max: { type: 'string' },
      batch: { type: 'string' },
      'max-deliveries': { type: 'string' },
      'wait-ms': { type: 'string' },
      follow: { type: 'boolean' },
      'no-commit': { type: 'boolean' },
      file: { type: 'string' },
      json: { type: 'boolean' },
      ...RESET_OPTIONS,
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...args] = positionals;
  if (!command) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  if (values.help) {
    process.stdout.write((COMMAND_HELP[command] ?? HELP) + '\n');
    return 0;
  }
  const brokers = (values.brokers ?? process.env.MQ_BROKERS ?? 'http://127.0.0.1:8080')
    .split(',')
    .filter(Boolean);
  const connection = {
    brokers,
    token: values.token ?? process.env.MQ_TOKEN,
    ...tlsOptions(values.ca ?? process.env.MQ_CA, values['server-name'] ?? process.env.MQ_SERVER_NAME),
    ...clientCertificate(values.cert ?? process.env.MQ_CERT, values.key ?? process.env.MQ_KEY),
  };
  const transport = new Transport(connection);

  switch (command) {
    case 'topics': {
      if (args[0] === 'create') {
        if (!args[1]) return usage('topics');
        const maxDeliveries = values['max-deliveries'];
        const settings =
          maxDeliveries === undefined
            ? undefined
            : { maxDeliveries: positiveInt(maxDeliveries, 0, 'max-deliveries') };
        const res = await new Producer(connection).createTopic(args[1], settings);
        console.log(res.created ? `created topic ${res.name}` : `topic ${res.name} already exists`);
        return 0;
      }
      const res = await transport.call<{ topics: string[] }>('GET', '/v1/topics');
      for (const t of res.topics) console.log(t);
      return 0;
    }
    case 'produce': {
      const topic = args[0];
      if (!topic) return usage('produce');
      const producer = new Producer(connection);
      const batch = positiveInt(values.batch, 500, 'batch');
      let count = 0;
      if (args.length > 1) {
        count += (await producer.sendBatch(topic, args.slice(1))).length;
      } else {
        const total = values.file
          ? await countLines(values.file)
          : // stdin redirected from a file (`< events.txt`): /dev/stdin reopens it, so it can be counted.
            process.stderr.isTTY && fstatSync(0).isFile()
            ? await countLines('/dev/stdin')
            : undefined;
        const progress = new Progress(`produce ${topic}`, total);
        const input = values.file ? createReadStream(values.file) : process.stdin;
        const send = async (messages: string[]) => {
          count += (await producer.sendBatch(topic, messages)).length;
          progress.advance(messages.length);
        };
        let pending: string[] = [];
        for await (const line of createInterface({ input, crlfDelay: Infinity })) {
          if (line === '') continue;
          pending.push(line);
          if (pending.length >= batch) {
            await send(pending);
            pending = [];
          }
        }
        if (pending.length) await send(pending);
        progress.finish();
      }
      console.error(`acknowledged ${count} message(s)`);
      return 0;
    }
    case 'consume': {
      const topic = args[0];
      if (!topic || !values.group) return usage('consume');
      const max = values.max === undefined ? Infinity : positiveInt(values.max, 0, 'max');
      const consumer = new Consumer({
        ...connection,
        topic,
        group: values.group,
        waitMs: positiveInt(values['wait-ms'], 1000, 'wait-ms'),
      });
      let stop = false;
      process.once('SIGINT', () => (stop = true));
      const output = new StdoutLines();
      const delivered = new DeliveryTracker(output.isPipe ? PIPE_BUFFER_BYTES : 0);
      const commit = !values['no-commit'];
      let printed = 0;
      while (!stop && printed < max && !output.closed) {
        const messages = await consumer.poll(Math.min(1000, max - printed));
        for (const m of messages) {
          const line = JSON.stringify(m) + '\n';
          if (!(await output.write(line))) break;
          delivered.wrote(m.shard, m.id, Buffer.byteLength(line));
          printed++;
        }
        // Only what the reader certainly has: `| head -5` must not consume what it threw away.
        if (commit) await consumer.commit(delivered.takeDelivered());
        if (messages.length === 0 && !values.follow) break;
      }
      if (!output.closed) {
        delivered.flushed();
        if (commit) await consumer.commit(delivered.takeDelivered());
      }
      // What was fetched and not certainly read goes to the next consumer of the group.
      await consumer.close({ commit: false });
      console.error(`consumed ${printed} message(s)`);
      return 0;
    }
    case 'offsets': {
      const topic = args[0];
      if (!topic || !values.group) return usage('offsets');
      const res = await transport.call<{
        shards: {
          shard: string;
          committed: number | null;
          latest: number | null;
          owner: string | null;
          deletedThrough?: number | null;
          missed?: number | null;
          error?: string;
        }[];
      }>('GET', `${groupPath(topic, values.group)}/offsets`);
      const rows = res.shards.map((s) => {
        const from = Math.max(s.committed ?? 0, s.deletedThrough ?? 0);
        const lag = s.latest !== null && s.committed !== null ? Math.max(0, s.latest - from) : null;
        return [s.shard, s.committed, s.latest, lag, s.missed ?? null, s.owner ?? s.error];
      });
      console.log(formatTable(['SHARD', 'COMMITTED', 'LATEST', 'LAG', 'MISSED', 'OWNER'], rows));
      return 0;
    }
    case 'groups': {
      const [action, topic, group] = args;
      const admin = new Admin(connection);
      if (action === 'list' && topic) {
        const groups = await admin.listGroups(topic);
        if (values.json) console.log(JSON.stringify({ groups }, null, 2));
        else if (groups.length === 0) console.error(`topic ${topic} has no consumer groups`);
        else console.log(groupsTable(groups));
        return 0;
      }
      if (action === 'reset' && topic && group) {
        const to = parseResetFlags(values);
        const progress = new Progress(`reset ${group}`, undefined);
        const timer = setInterval(() => progress.advance(), 100);
        try {
          const offsets = await admin.resetGroup(topic, group, to, { force: values.force });
          progress.finish();
          console.log(formatTable(['SHARD', 'COMMITTED'], Object.entries(offsets)));
        } finally {
          clearInterval(timer);
          progress.finish();
        }
        return 0;
      }
      if (action === 'delete' && topic && group) {
        await admin.deleteGroup(topic, group, { force: values.force });
        console.log(`deleted group ${group} of topic ${topic}`);
        return 0;
      }
      return usage('groups');
    }
    case 'status': {
      let failed = 0;
      const rows: unknown[][] = [];
      for (const url of brokers) {
        try {
          const s = await new Transport({ ...connection, brokers: [url], timeoutMs: 3000 }).call<{
            routingVersion: number;
            shards: { name: string; writable: boolean; readable: boolean; lastError?: string }[];
          }>('GET', '/v1/status');
          for (const sh of s.shards) {
            rows.push([
              url,
              `v${s.routingVersion}`,
              sh.name,
              yesNo(sh.writable),
              yesNo(sh.readable),
              sh.lastError,
            ]);
          }
        } catch (err) {
          failed++;
          rows.push([url, null, null, null, null, `unreachable: ${(err as Error).message}`]);
        }
      }
      console.log(formatTable(['BROKER', 'ROUTING', 'SHARD', 'WRITABLE', 'READABLE', 'ERROR'], rows));
      return failed === brokers.length ? 1 : 0;
    }
    default:
      console.error(`mqctl: unknown command "${command}"\n`);
      process.stderr.write(HELP);
      return 2;
  }
}

type TlsClientOptions = Pick<TransportOptions, 'ca' | 'serverName'>;

const yesNo = (b: boolean) => (b ? 'yes' : 'NO');

/** Non-empty lines of `file`, read once ahead of producing them so the bar knows its total. */
async function countLines(file: string): Promise<number> {
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (line !== '') n++;
  }
  return n;
}

/** The SDK's `ca` (read from `caFile`) and `serverName`, for those given. */
function tlsOptions(caFile: string | undefined, serverName: string | undefined): TlsClientOptions {
  return { ...(caFile ? { ca: readCaFile(caFile) } : {}), ...(serverName ? { serverName } : {}) };
}

/** The SDK's `cert` and `key`, read from their files; both or neither. */
function clientCertificate(
  certFile: string | undefined,
  keyFile: string | undefined,
): Pick<TransportOptions, 'cert' | 'key'> {
  if (!certFile && !keyFile) return {};
  if (!certFile || !keyFile)
    throw new Error('give both --cert FILE and --key FILE (MQ_CERT, MQ_KEY), or neither');
  return {
    cert: readPemFile(certFile, 'client certificate', '--cert, MQ_CERT'),
    key: readPemFile(keyFile, 'client key', '--key, MQ_KEY'),
  };
}

function usage(command: string): number {
  console.error(COMMAND_HELP[command]);
  return 2;
}

function positiveInt(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
  return n;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof MqClientError) console.error(`mqctl: ${err.code}: ${err.message}`);
    else console.error(`mqctl: ${(err as Error).message}`);
    process.exit(1);
  },
);
