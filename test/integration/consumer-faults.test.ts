import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../src/local/cluster.js';
import { startBroker, startShards } from '../support/dataplane.js';

/** Consumers under faults: a reader that closes the CLI's pipe. Runs dist/ (npm run build). */
let cluster: LocalShards;
let broker: Broker;

const MQCTL = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

beforeAll(async () => {
  cluster = await startShards('127.0.131');
  broker = await startBroker(cluster);
});

afterAll(async () => {
  await broker?.close();
  await cluster?.destroy();
});

async function committed(topic: string, group: string): Promise<Record<string, number>> {
  const res = await fetch(`${broker.url}/v1/topics/${topic}/groups/${group}/offsets`);
  const body = (await res.json()) as { shards: { shard: string; committed: number }[] };
  return Object.fromEntries(body.shards.map((s) => [s.shard, s.committed]));
}

/** Runs `mqctl consume` into `reader` through a real pipe; the reader's output and mqctl's exit. */
function consumeInto(reader: string, topic: string, group: string, flags = '') {
  const script = `node "$MQCTL" consume ${topic} --group ${group} --wait-ms 300 ${flags} 2>"$ERR_FILE" | ${reader}; echo "mqctl-exit=\${PIPESTATUS[0]}" >&2; cat "$ERR_FILE" >&2`;
  return new Promise<{ lines: string[]; mqctlExit: number; mqctlStderr: string }>((resolve, reject) => {
    const child = spawn('bash', ['-c', script], {
      env: {
        ...process.env,
        MQCTL,
        MQ_BROKERS: broker.url,
        ERR_FILE: `/tmp/mqctl-${process.pid}-${group}.err`,
      },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('exit', () => {
      const exit = /mqctl-exit=(\d+)/.exec(err);
      resolve({
        lines: out.split('\n').filter(Boolean),
        mqctlExit: exit ? Number(exit[1]) : -1,
        mqctlStderr: err.replace(/mqctl-exit=\d+\n/, ''),
      });
    });
  });
}

type Printed = { shard: string; id: number; value: string };

describe('mqctl consume', () => {
  const topic = 'cli-pipe';
  const total = 3000;

  beforeAll(async () => {
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    const values = Array.from({ length: total }, (_, i) => `message ${i} ${'x'.repeat(100)}`);
    for (let i = 0; i < total; i += 500) await producer.sendBatch(topic, values.slice(i, i + 500));
  });

  it('commits exactly what it printed when its output stays open', async () => {
    const run = await consumeInto('cat', topic, 'to-the-end', '--max 7');
    expect(run.mqctlExit).toBe(0);
    const printed = run.lines.map((l) => JSON.parse(l) as Printed);
    expect(printed).toHaveLength(7);
    const last: Record<string, number> = {};
    for (const m of printed) last[m.shard] = m.id;
    const offsets = await committed(topic, 'to-the-end');
    expect(offsets).toMatchObject(last);
    expect(Object.values(offsets).reduce((a, b) => a + b, 0)).toBe(7);
  });

  it('| head -5: exits quietly and commits nothing the reader did not print', async () => {
    const group = 'head';
    const run = await consumeInto('head -n 5', topic, group);
    expect(run.lines).toHaveLength(5);
    expect(run.mqctlExit).toBe(0);
    expect(run.mqctlStderr).not.toMatch(/EPIPE|Error|at /);

    // Every committed message was printed: nothing is marked consumed that nobody saw.
    const printed = new Set(run.lines.map((l) => JSON.parse(l) as Printed).map((m) => `${m.shard}/${m.id}`));
    const offsets = await committed(topic, group);
    for (const [shard, upTo] of Object.entries(offsets)) {
      for (let id = 1; id <= upTo; id++) expect(printed.has(`${shard}/${id}`)).toBe(true);
    }
    // The rest goes to the next consumer of the group: every message is delivered.
    const rest = await consumeInto('cat', topic, group);
    expect(rest.mqctlExit).toBe(0);
    const committedCount = Object.values(offsets).reduce((a, b) => a + b, 0);
    expect(rest.lines).toHaveLength(total - committedCount);
  });
});
