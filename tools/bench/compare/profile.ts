import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type CpuProfile, busyShare, selfTimeByOrigin, topSelfTime } from './cpuprofile.js';
import { Progress, consumePhase, pacedPhase, producePhase } from './harness.js';
import type { CompareOptions } from './main.js';
import { RssSampler, residentKiB } from './procs.js';
import { SharedShards } from './systems/cluster.js';
import { MYSQLMQ_DEFAULTS, MysqlmqSystem } from './systems/mysqlmq.js';
import { type MemorySample, parseMemoryMetrics } from './memory.js';
import { fmtInt, textTable } from './table.js';

/** Keeps, per broker, the /metrics memory sample taken when its RSS was highest. */
class MemoryWatch {
  readonly peaks = new Map<string, MemorySample>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly brokers: { url: string; pid: number }[]) {}

  start(): this {
    this.timer = setInterval(() => void this.sample(), 500);
    return this;
  }

  private async sample(): Promise<void> {
    await Promise.all(
      this.brokers.map(async (b) => {
        try {
          const rssMiB = residentKiB(b.pid) / 1024;
          const best = this.peaks.get(b.url);
          if (best && best.rssMiB >= rssMiB) return;
          const text = await (await fetch(`${b.url}/metrics`)).text();
          this.peaks.set(b.url, parseMemoryMetrics(text));
        } catch {
          // broker busy or stopping: next sample
        }
      }),
    );
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

async function loadProfiles(dir: string): Promise<CpuProfile[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(join(dir, f), 'utf8')) as CpuProfile));
}

/**
 * `--profile DIR`: mysqlmq alone, the brokers run with `node --cpu-prof`: restarted for each phase
 * (produce at full load, the groups reading the backlog, then the paced load on a fresh topic)
 * so each phase gets its own profiles.
 * Prints the top self-time functions per phase and the brokers' memory at their RSS peak.
 */
export async function runProfile(o: CompareOptions, dirArg: string): Promise<number> {
  const dir = resolve(dirArg);
  const repo = resolve('.');
  if (dir === repo || dir.startsWith(`${repo}/`)) {
    console.error(`--profile: write profiles outside the repository (e.g. /tmp/mysqlmq-prof), not ${dir}`);
    return 2;
  }
  const progress = new Progress();
  const shards = new SharedShards();
  const system = new MysqlmqSystem(shards, { ...MYSQLMQ_DEFAULTS, brokerNodeArgs: o.brokerNodeArgs });
  const summary: Record<string, unknown> = { options: o };
  try {
    await system.start((line) => console.log(`    ${line}`));
    for (const size of o.sizes) {
      const phaseDir = (phase: string) => join(dir, `${phase}-${size}`);
      const brokerArgs = (phase: string) => [
        ...o.brokerNodeArgs,
        '--cpu-prof',
        `--cpu-prof-dir=${phaseDir(phase)}`,
      ];
      const watch = () =>
        new MemoryWatch(system.urls.map((url, i) => ({ url, pid: system.serverPids()[i] }))).start();

      for (const phase of ['produce', 'consume', 'paced']) await mkdir(phaseDir(phase), { recursive: true });
      await system.startBrokers(brokerArgs('produce'));
      const session = await system.session(size, 'load', o.groups);
      let rss = new RssSampler(() => system.serverPids()).start();
      let mem = watch();
      const produced = await producePhase(session, size, o, progress, `[profile ${size} B]`, (e) =>
        console.error(String(e)),
      );
      mem.stop();
      const produceRss = rss.stop();
      const produceMem = Object.fromEntries(mem.peaks);
      // The session's producers are done; the new brokers serve the same topic.
      await system.startBrokers(brokerArgs('consume'));
      rss = new RssSampler(() => system.serverPids()).start();
      mem = watch();
      const consumed = await consumePhase(session, produced.messages, o, progress, `[profile ${size} B]`);
      mem.stop();
      const consumeRss = rss.stop();
      const consumeMem = Object.fromEntries(mem.peaks);
      await session.close();
      // The paced phase on a fresh topic, as the comparison runs it.
      await system.startBrokers(brokerArgs('paced'));
      rss = new RssSampler(() => system.serverPids()).start();
      mem = watch();
      const paced = await pacedPhase(system, size, o, progress, `[profile ${size} B]`, (e) =>
        console.error(String(e)),
      );
      mem.stop();
      const pacedRss = rss.stop();
      const pacedMem = Object.fromEntries(mem.peaks);
      await system.stopBrokers();

      for (const [phase, result, rssPeak, memory] of [
        ['produce', produced.perSecond, produceRss, produceMem],
        ['consume', consumed.perSecond, consumeRss, consumeMem],
        ['paced', paced.delivered / (o.pacedMs / 1000), pacedRss, pacedMem],
      ] as const) {
        const profiles = await loadProfiles(phaseDir(phase));
        const { busyMs, top } = topSelfTime(profiles, 25);
        const origins = selfTimeByOrigin(profiles);
        const busy = profiles.map(busyShare);
        console.log(
          `\n==> ${phase} ${size} B: ${fmtInt(result)}/s; ${profiles.length} broker profiles, ` +
            `busy ${busy.map((b) => `${b.busyPercent.toFixed(0)}% of ${(b.wallMs / 1000).toFixed(1)} s`).join(', ')}; ` +
            `RSS peak ${rssPeak.peakProcessMiB} MiB (largest broker), ${rssPeak.peakTotalMiB} MiB (sum)`,
        );
        for (const [url, m] of Object.entries(memory)) {
          console.log(
            `    ${url} at its RSS peak: rss ${m.rssMiB} MiB, V8 heap ${m.heapUsedMiB} used / ${m.heapTotalMiB} total MiB ` +
              `(${Object.entries(m.spaces)
                .map(([k, v]) => `${k} ${v}`)
                .join(', ')}), external ${m.externalMiB} MiB`,
          );
        }
        console.log(
          textTable(
            ['self ms', '%', 'function', 'where', 'origin'],
            top.map((t) => [t.selfMs.toFixed(0), t.percent.toFixed(1), t.name, t.location, t.origin]),
          ),
        );
        console.log(
          `    by origin: ${origins
            .slice(0, 10)
            .map((x) => `${x.origin} ${x.percent.toFixed(1)}%`)
            .join(', ')} (busy ${busyMs.toFixed(0)} ms)`,
        );
        summary[`${phase}-${size}`] = { perSecond: result, rss: rssPeak, memory, busy, origins, top };
      }
    }
  } finally {
    await system.stop();
    await shards.stop();
  }
  await writeFile(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  console.log(`\n==> profiles and summary.json in ${dir}`);
  return 0;
}
