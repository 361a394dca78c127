import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Admin, Consumer, type Message, Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { refusal, startBroker, startShards } from '../support/dataplane.js';

/** Consumer-group administration (issue 11.2): list, reset in each mode, refusal, force, delete. */
let cluster: LocalShards;
let broker: Broker;
/** Sees shard-1 as its primary being down: writes nowhere, reads from the standby. */
let degraded: Broker;
let admin: Admin;
let producer: Producer;

beforeAll(async () => {
  cluster = await startShards('127.0.86');
  broker = await startBroker(cluster);
  const routing = cluster.routing();
  routing.shards[1] = { ...routing.shards[1], write: null, read: cluster.shards[1].standby.endpoint };
  degraded = await startBroker(cluster, { routing });
  admin = new Admin({ brokers: [broker.url] });
  producer = new Producer({ brokers: [broker.url] });
});

afterAll(async () => {
  await degraded?.close();
  await broker?.close();
  await cluster?.destroy();
});

const consumer = (topic: string, group: string, consumerId?: string) =>
  new Consumer({ brokers: [broker.url], topic, group, consumerId, waitMs: 100 });

/** Polls until a poll brings nothing; commits what it read unless told not to. */
async function drain(c: Consumer, commit = true): Promise<Message[]> {
  const all: Message[] = [];
  for (;;) {
    const batch = await c.poll();
    if (batch.length === 0) break;
    all.push(...batch);
    if (commit) await c.commit();
  }
  return all;
}

/** A fresh consumer of the group reads what is there, commits it and leaves. */
async function readOnce(topic: string, group: string): Promise<string[]> {
  const c = consumer(topic, group);
  const values = (await drain(c)).map((m) => String(m.value));
  await c.close();
  return values.sort();
}

async function topicWith(topic: string, values: string[]): Promise<void> {
  await producer.createTopic(topic);
  // One message per publish, so round-robin puts them on both shards.
  for (const v of values) await producer.send(topic, v);
}

const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('listing groups', () => {
  it('shows each group with its members and, per shard, committed, newest, lag and owner', async () => {
    const topic = 'groups-list';
    await topicWith(topic, range('m', 10));
    expect(await readOnce(topic, 'audit')).toHaveLength(10);
    const active = consumer(topic, 'billing', 'billing-1');
    const first = await active.poll(3);
    await active.commit();

    const groups = await admin.listGroups(topic);
    expect(groups.map((g) => g.name)).toEqual(['audit', 'billing']);
    const [audit, billing] = groups;
    expect(audit.members).toEqual([]);
    expect(billing.members).toEqual(['billing-1']);
    const newest = Object.values(audit.shards).map((s) => s.newest!);
    expect(newest.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(10);
    for (const [name, s] of Object.entries(audit.shards)) {
      expect(s).toMatchObject({ committed: s.newest, lag: 0, owner: null });
      const committed = Math.max(0, ...first.filter((m) => m.shard === name).map((m) => m.id));
      expect(billing.shards[name]).toMatchObject({
        committed,
        newest: s.newest,
        lag: s.newest! - committed,
        owner: 'billing-1',
      });
    }
    await active.close();
    expect((await admin.listGroups(topic)).find((g) => g.name === 'billing')!.members).toEqual([]);
  });
});

describe('resetting a group', () => {
  it('to earliest delivers every message again', async () => {
    const topic = 'reset-earliest';
    await topicWith(topic, range('e', 6));
    expect(await readOnce(topic, 'g')).toHaveLength(6);
    expect(await readOnce(topic, 'g')).toEqual([]);
    const offsets = await admin.resetGroup(topic, 'g', 'earliest');
    expect(Object.values(offsets)).toEqual([0, 0]);
    expect(await readOnce(topic, 'g')).toEqual(range('e', 6).sort());
  });

  it('to latest skips everything published so far', async () => {
    const topic = 'reset-latest';
    await topicWith(topic, range('old', 5));
    await admin.resetGroup(topic, 'new-group', 'latest');
    expect(await readOnce(topic, 'new-group')).toEqual([]);
    await producer.send(topic, 'fresh');
    expect(await readOnce(topic, 'new-group')).toEqual(['fresh']);
  });

  it('to a timestamp delivers from the first message published at or after it on each shard', async () => {
    const topic = 'reset-time';
    await topicWith(topic, range('before', 4));
    await new Promise((r) => setTimeout(r, 50));
    const at = Date.now();
    await new Promise((r) => setTimeout(r, 50));
    await topicWith(topic, range('after', 4));
    expect(await readOnce(topic, 'g')).toHaveLength(8);
    await admin.resetGroup(topic, 'g', { timestamp: at });
    expect(await readOnce(topic, 'g')).toEqual(range('after', 4).sort());
    // A time after every message: nothing left to read.
    await admin.resetGroup(topic, 'g', { timestamp: Date.now() + 60_000 });
    expect(await readOnce(topic, 'g')).toEqual([]);
  });

  it('to given ids moves only the shards named, and refuses an id past the newest', async () => {
    const topic = 'reset-offsets';
    await topicWith(topic, range('o', 8));
    const c = consumer(topic, 'g');
    const all = await drain(c);
    await c.close();
    const shard0 = all.filter((m) => m.shard === 'shard-0').sort((a, b) => a.id - b.id);
    expect(shard0.length).toBeGreaterThanOrEqual(2);
    const keep = shard0[0].id;
    expect(await admin.resetGroup(topic, 'g', { offsets: { 'shard-0': keep } })).toEqual({ 'shard-0': keep });
    expect(await readOnce(topic, 'g')).toEqual(
      shard0
        .slice(1)
        .map((m) => String(m.value))
        .sort(),
    );

    const past = await refusal(admin.resetGroup(topic, 'g', { offsets: { 'shard-0': 1_000_000 } }));
    expect([past.status, past.code]).toEqual([422, 'offset_out_of_range']);
    const unknown = await refusal(admin.resetGroup(topic, 'g', { offsets: { 'shard-9': 1 } }));
    expect([unknown.status, unknown.code]).toEqual([400, 'unknown_shard']);
  });

  it('is refused while a consumer holds shards, and says who', async () => {
    const topic = 'reset-active';
    await topicWith(topic, range('a', 4));
    const active = consumer(topic, 'g', 'worker-7');
    await drain(active);
    const err = await refusal(admin.resetGroup(topic, 'g', 'earliest'));
    expect([err.status, err.code]).toEqual([409, 'group_active']);
    expect(err.message).toContain('worker-7');
    const del = await refusal(admin.deleteGroup(topic, 'g'));
    expect([del.status, del.code]).toEqual([409, 'group_active']);
    await active.close();
  });

  it('forced while a consumer is active: its next commit does not undo it, and it reads again from the new offset', async () => {
    const topic = 'reset-force';
    await topicWith(topic, range('f', 6));
    const active = consumer(topic, 'g', 'worker-1');
    const before: string[] = [];
    const after: string[] = [];
    let committedAfterReset: (number | null)[] | undefined;
    // A liveness bound: without the redelivery run() would wait for messages for good.
    const giveUp = setTimeout(() => active.stop(), 20_000);
    await active.run(async (messages) => {
      const values = messages.map((m) => String(m.value));
      if (before.length < 6) {
        before.push(...values);
        // Handled, not committed yet: run() sends the commit along with its next fetch.
        if (before.length === 6) await admin.resetGroup(topic, 'g', 'earliest', { force: true });
        return;
      }
      // That fetch carried the commit from before the reset; it must have changed nothing.
      committedAfterReset ??= Object.values((await admin.listGroups(topic))[0].shards).map(
        (s) => s.committed,
      );
      after.push(...values);
      if (after.length >= 6) active.stop();
    });
    clearTimeout(giveUp);
    expect(committedAfterReset).toEqual([0, 0]);
    expect(after.sort()).toEqual(range('f', 6).sort());
    await active.close();
    expect(await readOnce(topic, 'g')).toEqual([]);
  });

  it('is refused with 503 while a shard takes no writes, and changes nothing', async () => {
    const topic = 'reset-degraded';
    await topicWith(topic, range('d', 4));
    expect(await readOnce(topic, 'g')).toHaveLength(4);
    const viaDegraded = new Admin({ brokers: [degraded.url], timeoutMs: 1000 });
    const err = await refusal(viaDegraded.resetGroup(topic, 'g', 'earliest'));
    expect([err.status, err.code]).toEqual([503, 'shard_read_only']);
    expect(err.message).toContain('shard-1');
    const del = await refusal(viaDegraded.deleteGroup(topic, 'g'));
    expect([del.status, del.code]).toEqual([503, 'shard_read_only']);
    expect(await readOnce(topic, 'g')).toEqual([]);
  });
});

describe('who may change a group', () => {
  it('reset and delete need the broker token when the broker has one', async () => {
    const topic = 'groups-auth';
    await topicWith(topic, range('t', 2));
    expect(await readOnce(topic, 'g')).toHaveLength(2);
    const guarded = await startBroker(cluster, { authToken: 'broker-secret' });
    try {
      const anonymous = new Admin({ brokers: [guarded.url] });
      for (const attempt of [
        anonymous.resetGroup(topic, 'g', 'earliest'),
        anonymous.deleteGroup(topic, 'g'),
      ]) {
        const err = await refusal(attempt);
        expect([err.status, err.code]).toEqual([401, 'unauthenticated']);
      }
      const withToken = new Admin({ brokers: [guarded.url], token: 'broker-secret' });
      expect(await withToken.resetGroup(topic, 'g', 'earliest')).toEqual({ 'shard-0': 0, 'shard-1': 0 });
    } finally {
      await guarded.close();
    }
  });
});

describe('deleting a group', () => {
  it('forgets it on every shard: it is no longer listed and a new consumer starts from the beginning', async () => {
    const topic = 'groups-delete';
    await topicWith(topic, range('x', 4));
    expect(await readOnce(topic, 'g')).toHaveLength(4);
    await admin.deleteGroup(topic, 'g');
    expect((await admin.listGroups(topic)).map((g) => g.name)).toEqual([]);
    const again = await refusal(admin.deleteGroup(topic, 'g'));
    expect([again.status, again.code]).toEqual([404, 'group_not_found']);
    expect(await readOnce(topic, 'g')).toHaveLength(4);
  });

  it('forced while a consumer is active: its later commit does not bring the old offsets back', async () => {
    const topic = 'groups-delete-force';
    await topicWith(topic, range('y', 4));
    const active = consumer(topic, 'g', 'worker-2');
    expect(await drain(active, false)).toHaveLength(4);
    await admin.deleteGroup(topic, 'g', { force: true });
    // Ignored, or refused: either way nothing from before the delete is committed again (the
    // consumer, still running, may take its shards again: then the group is back at 0).
    await active.commit().catch(() => undefined);
    for (const g of await admin.listGroups(topic)) {
      expect(Object.values(g.shards).map((s) => s.committed)).toEqual([0, 0]);
    }
    await active.close();
    expect(await readOnce(topic, 'g')).toHaveLength(4);
  });
});

describe('mqctl groups', () => {
  const run = (...args: string[]) =>
    promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      'src/cli/main.ts',
      '--brokers',
      broker.url,
      ...args,
    ]);

  it('lists groups as an aligned table and resets with --to-offsets, without progress output on a pipe', async () => {
    const topic = 'mqctl-groups';
    await topicWith(topic, range('c', 4));
    expect(await readOnce(topic, 'reporting')).toHaveLength(4);
    const listed = await run('groups', 'list', topic);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^GROUP\s+SHARD\s+COMMITTED\s+NEWEST\s+LAG\s+OWNER$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2))).toEqual([
      ['reporting', 'shard-0'],
      ['reporting', 'shard-1'],
    ]);
    // Columns line up: every row has its LAG column where the header has it.
    const lagAt = lines[0].indexOf('LAG') + 'LAG'.length;
    for (const line of lines.slice(1)) expect(line[lagAt - 1]).toBe('0');

    const reset = await run('groups', 'reset', topic, 'reporting', '--to-offsets', 'shard-0=0,shard-1=0');
    expect(reset.stdout.split('\n')[0]).toMatch(/^SHARD\s+COMMITTED$/);
    expect(reset.stdout + reset.stderr).not.toContain('\x1b[');
    expect(await readOnce(topic, 'reporting')).toHaveLength(4);

    const refused = await run('groups', 'reset', topic, 'reporting').catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(refused).toMatchObject({ code: 1 });
    expect((refused as { stderr: string }).stderr).toContain('exactly one of --to-earliest');
  });

  it('produce --file shows a progress bar on a terminal and nothing of it on a pipe', async () => {
    const topic = 'mqctl-produce';
    await producer.createTopic(topic);
    const dir = await mkdtemp(join(tmpdir(), 'mqctl-'));
    const file = join(dir, 'lines.txt');
    await writeFile(file, range('line', 20).join('\n') + '\n');
    const args = ['--brokers', broker.url, 'produce', topic, '--file', file, '--batch', '5'];
    const piped = await promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      'src/cli/main.ts',
      ...args,
    ]);
    expect(piped.stderr).toBe('acknowledged 20 message(s)\n');
    expect(piped.stdout).toBe('');
    // script(1) runs it on a pseudo-terminal, as a person at a terminal would.
    const command = [process.execPath, '--import', 'tsx', 'src/cli/main.ts', ...args].join(' ');
    const onTty = await promisify(execFile)('script', ['-qec', command, '/dev/null']);
    expect(onTty.stdout).toMatch(/produce mqctl-produce \[[#.]+\] +\d+% +\d+\/20/);
    expect(onTty.stdout).toContain('\r\x1b[2K');
    expect(onTty.stdout).toContain('acknowledged 20 message(s)');
    // Standard input redirected from the file: counted too, so a bar rather than a counter.
    const redirected = `${command.replace(` --file ${file}`, '')} < ${file}`;
    const fromStdin = await promisify(execFile)('script', ['-qec', redirected, '/dev/null']);
    expect(fromStdin.stdout).toMatch(/produce mqctl-produce \[[#.]+\] +\d+% +\d+\/20/);
    await rm(dir, { recursive: true, force: true });
    expect(await readOnce(topic, 'g')).toHaveLength(60);
  });
});
