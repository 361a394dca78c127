#!/usr/bin/env node
/**
 * `npm run check:promql`: runs every query of the chart's Grafana dashboard and every alert of its
 * PrometheusRule against a real Prometheus (Debian package `prometheus`) that scrapes a real
 * broker in front of two local shards, and Debian's mysqld_exporter on each of their four
 * `mariadbd` (as the sidecars run), while producers and two consumer groups (one keeping up,
 * one committing half) run. Writes the section "PromQL check" of docs/observability.md: each query,
 * whether Prometheus accepted it, and how many series it returned. Operator and kubelet series
 * (mysqlmq_*, kubelet_volume_*) do not exist here: those queries are checked for syntax only,
 * and the table says so.
 *
 * Flags: --prefix (127.0.67: loopback addresses), --seconds (60 of load before querying).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BROKER_DEFAULTS, Broker } from '../../src/broker/broker.js';
import { Consumer, Producer } from '../../src/client/index.js';
import { createLogger } from '../../src/common/logger.js';
import { LocalShards } from '../local/cluster.js';
import { LocalMysqldExporter } from '../local/mysqld-exporter.js';
import { replaceSection } from './machine.js';
import { sleep } from '../../src/common/deadline.js';

const CHART_FILES = 'helm/mysqlmq-operator/files';
const DOC = 'docs/observability.md';

const { values } = parseArgs({
  options: {
    prefix: { type: 'string', default: '127.0.67' },
    seconds: { type: 'string', default: '60' },
  },
});
const prefix = values.prefix!;

interface Check {
  where: string;
  expr: string;
  status: string;
  series: number;
  note: string;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mysqlmq-promql-'));
  const shards = await LocalShards.start({ dir, shards: 2, addressPrefix: prefix });
  const broker = await Broker.start(
    {
      ...BROKER_DEFAULTS,
      host: `${prefix}.50`,
      port: 8080,
      db: shards.secrets.broker,
      routing: shards.routing(),
    },
    createLogger('broker', 'error'),
  );
  // One mysqld_exporter per instance, as the sidecars of spec.monitoring.mysqldExporter run, with
  // the labels the chart's PodMonitor gives them.
  const exporters = await Promise.all(
    shards.shards.flatMap((shard, i) =>
      (['primary', 'standby'] as const).map(async (role, r) => ({
        labels: {
          namespace: 'local',
          cluster: 'promql-check',
          shard: shard.name,
          role,
          pod: `promql-check-${shard.name}-${r}`,
        },
        exporter: await LocalMysqldExporter.start({
          target: shard[role].endpoint,
          user: shards.secrets.monitor,
          listen: `${prefix}.${70 + i * 2 + r}:9104`,
        }),
      })),
    ),
  );
  const promUrl = `http://${prefix}.60:9090`;
  await writeFile(
    join(dir, 'prometheus.yml'),
    // JSON is YAML too.
    JSON.stringify({
      global: { scrape_interval: '2s', evaluation_interval: '2s' },
      rule_files: [join(process.cwd(), CHART_FILES, 'alerts.yaml')],
      scrape_configs: [
        { job_name: 'mysqlmq-broker', static_configs: [{ targets: [`${prefix}.50:8080`] }] },
        {
          job_name: 'mysqlmq-mysqld',
          static_configs: exporters.map((e) => ({
            targets: [e.exporter.url.replace('http://', '')],
            labels: e.labels,
          })),
        },
      ],
    }),
  );
  const prometheus = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=${prefix}.60:9090`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let promLog = '';
  prometheus.stderr.on('data', (d: Buffer) => (promLog += d.toString()));
  let running = true;
  const loops: Promise<void>[] = [];
  try {
    const producer = new Producer({ brokers: [broker.url] });
    for (const topic of ['orders', 'audit-log']) await producer.createTopic(topic);
    loops.push(
      (async () => {
        for (let i = 0; running; i++) {
          await producer.sendBatch(
            i % 2 ? 'orders' : 'audit-log',
            Array.from({ length: 50 }, (_, j) => `m${i}-${j}`),
          );
          await sleep(50);
        }
      })(),
    );
    for (const [group, share] of [
      ['billing', 1],
      ['reporting', 0.5],
    ] as const) {
      loops.push(
        (async () => {
          const consumer = new Consumer({ brokers: [broker.url], topic: 'orders', group, waitMs: 200 });
          while (running) {
            const got = await consumer.poll(share === 1 ? 1000 : 20);
            if (got.length) await consumer.commit();
            if (share < 1) await sleep(500);
          }
          await consumer.close();
        })(),
      );
    }
    console.log(`load running; Prometheus at ${promUrl} scraping ${broker.url} every 2 s`);
    await sleep(Number(values.seconds) * 1000);

    const dashboard = JSON.parse(await readFile(join(CHART_FILES, 'dashboard.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    // The alerts as Prometheus loaded them from the chart's file (their health says it evaluates them).
    const rules = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; query: string; health: string; lastError?: string }[] }[] };
    };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    const queries = [
      ...dashboard.panels.flatMap((p) =>
        p.targets.map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })),
      ),
      ...loaded.map((r) => ({ where: `alert ${r.name}`, expr: r.query })),
    ];
    const checks: Check[] = [];
    for (const q of queries) {
      const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q.expr)}`);
      const body = (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
      const series = body.data?.result.length ?? 0;
      const external = /mysqlmq_|kubelet_/.test(q.expr) && !/mq_broker_/.test(q.expr);
      checks.push({
        where: q.where,
        expr: q.expr,
        status: body.status === 'success' ? 'accepted' : `error: ${body.error}`,
        series,
        note: external
          ? 'operator or kubelet series: syntax only here'
          : series
            ? 'data'
            : 'no data (condition false)',
      });
    }
    const ruleHealth = rules.data.groups
      .flatMap((g) => g.rules)
      .map((r) => `${r.name}: ${r.health}${r.lastError ? ` (${r.lastError})` : ''}`);
    const version = await new Promise<string>((resolve) => {
      const p = spawn('prometheus', ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      p.on('close', () => resolve(out.split('\n')[0] ?? 'prometheus'));
    });
    const table = checks
      .map(
        (c) =>
          `| ${c.where} | \`${c.expr.replace(/\s+/g, ' ').replace(/\|/g, '\\|')}\` | ${c.status} | ${c.series} | ${c.note} |`,
      )
      .join('\n');
    const section = `## PromQL check

\`npm run check:promql\` on ${new Date().toISOString().slice(0, 10)}: ${version.trim()} (Debian package
\`prometheus\`) scraping one real broker every 2 s, in front of two local shards (primary + semi-sync
standby \`mariadbd\` each), and Debian's \`prometheus-mysqld-exporter\` on each of the four \`mariadbd\`
(as the MariaDB pods' sidecars, logged in as \`mq_monitor\`), for ${values.seconds} s while producers publish to two topics and two groups
consume \`orders\` (\`billing\` keeps up, \`reporting\` commits 20 messages every half second). The alert
rules are loaded from \`helm/mysqlmq-operator/files/alerts.yaml\`; Prometheus reports them as: ${ruleHealth.join('; ')}.

| where | query | Prometheus | series | |
| --- | --- | --- | --- | --- |
${table}
`;
    const doc = await readFile(DOC, 'utf8').catch(() => '# Observability\n');
    await writeFile(DOC, replaceSection(doc, 'promql-check', section));
    console.log(section);
    const failed = checks.filter((c) => c.status !== 'accepted');
    if (loaded.length === 0) throw new Error(`Prometheus loaded no alert rules:\n${promLog.slice(-2000)}`);
    if (failed.length) {
      console.error(`${failed.length} queries failed`);
      process.exitCode = 1;
    }
  } catch (err) {
    console.error(promLog.slice(-2000));
    throw err;
  } finally {
    running = false;
    await Promise.allSettled(loops);
    prometheus.kill('SIGTERM');
    await broker.close();
    await Promise.all(exporters.map((e) => e.exporter.stop()));
    await shards.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    console.error((err as Error).stack);
    process.exit(1);
  },
);
