import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';

/** Processes on this machine, read from /proc (Linux). Nothing here signals or changes them. */

/** Resident memory in KiB, or 0 if the process is gone. */
export function residentKiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

let clockTicks: number | undefined;

/** CPU time (user + system) the process has used so far, in ms, or 0 if it is gone. */
export function cpuMs(pid: number): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return 0;
  }
}

/** CPU time used by a set of processes between `start` and `stop` (processes gone meanwhile: lost). */
export class CpuMeter {
  private readonly baseline = new Map<number, number>();

  constructor(private readonly pids: () => number[]) {}

  start(): this {
    for (const pid of this.pids()) this.baseline.set(pid, cpuMs(pid));
    return this;
  }

  stopMs(): number {
    let total = 0;
    for (const pid of this.pids()) total += cpuMs(pid) - (this.baseline.get(pid) ?? 0);
    return Math.round(total);
  }
}

/** Pids whose command name (`/proc/PID/comm`) is `comm` and whose command line passes `filter`. */
export function findPids(comm: string, filter: (cmdline: string[]) => boolean = () => true): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== comm) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (filter(cmdline)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Samples the resident memory of a changing set of processes and keeps the peaks. */
export class RssSampler {
  peakTotalKiB = 0;
  peakProcessKiB = 0;
  processes = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly pids: () => number[],
    private readonly intervalMs = 250,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  sample(): void {
    const pids = this.pids();
    this.processes = Math.max(this.processes, pids.length);
    let total = 0;
    for (const pid of pids) {
      const kib = residentKiB(pid);
      total += kib;
      this.peakProcessKiB = Math.max(this.peakProcessKiB, kib);
    }
    this.peakTotalKiB = Math.max(this.peakTotalKiB, total);
  }

  stop(): { peakTotalMiB: number; peakProcessMiB: number; processes: number } {
    clearInterval(this.timer);
    this.sample();
    return {
      peakTotalMiB: Math.round(this.peakTotalKiB / 1024),
      peakProcessMiB: Math.round(this.peakProcessKiB / 1024),
      processes: this.processes,
    };
  }
}

export { freePort } from '../../local/kubectl.js';

/** True when something accepts TCP connections at host:port. */
export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
