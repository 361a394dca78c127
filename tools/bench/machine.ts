import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname } from 'node:path';

/** Where every benchmark writes its section. */
export const BENCHMARKS_MD = 'docs/benchmarks.md';

/** One line describing the machine a benchmark ran on. */
export function describeMachine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  let mariadb = 'unknown';
  try {
    mariadb = /Ver (\S+)/.exec(execFileSync('mariadbd', ['--version'], { encoding: 'utf8' }))?.[1] ?? mariadb;
  } catch {
    // reported as unknown
  }
  return `${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, MariaDB ${mariadb}`;
}

/** The machine's 1-minute load average now. */
export function loadNow(): number {
  return loadavg()[0]!;
}

/** How busy the machine was while a benchmark ran, from its 1-minute load average at the start and the end. */
export function describeLoad(start: number, end: number): string {
  return `1-minute load average ${start.toFixed(1)} at the start and ${end.toFixed(1)} at the end, on ${cpus().length} cores`;
}

/** Resident memory of a process in MiB, from /proc (Linux). */
export function residentMiB(pid: number): number {
  try {
    const status = execFileSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' });
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return Math.round(kb / 1024);
  } catch {
    return 0;
  }
}

/** Rewrites the part of a Markdown file between two marker comments, appending it if absent. */
export function replaceSection(doc: string, name: string, body: string): string {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${begin}\n${body.trim()}\n${end}`;
  const start = doc.indexOf(begin);
  const stop = doc.indexOf(end);
  if (start >= 0 && stop > start) return doc.slice(0, start) + block + doc.slice(stop + end.length);
  return `${doc.trimEnd()}\n\n${block}\n`;
}

/** Rewrites one benchmark's section of docs/benchmarks.md, leaving the others as they are. */
export async function writeBenchmarkSection(name: string, body: string): Promise<void> {
  // Read right before writing: other sections of the file change independently.
  const doc = await readFile(BENCHMARKS_MD, 'utf8').catch(() => '# Benchmarks\n');
  await writeFile(BENCHMARKS_MD, replaceSection(doc, name, body));
}

/** Keeps a benchmark's raw results as JSON (under docs/bench-results/). */
export async function writeBenchmarkJson(path: string, results: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, JSON.stringify(results, null, 2) + '\n');
}
