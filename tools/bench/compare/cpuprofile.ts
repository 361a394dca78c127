/** Summaries of V8 `.cpuprofile` files (written by `node --cpu-prof`). Pure. */

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  /** Microseconds since the previous sample, one per sample. */
  timeDeltas?: number[];
}

export interface SelfTime {
  /** Function name and where it is defined (file:line, shortened). */
  name: string;
  location: string;
  /** Where the code comes from: our source, a package, Node itself, or V8. */
  origin: string;
  selfMs: number;
  /** Share of the busy (non-idle) time. */
  percent: number;
}

const IDLE = new Set(['(idle)']);

/** Shortens a script URL to something readable: package/file or src/... or node:... */
export function shortLocation(url: string, line: number): string {
  if (!url) return '';
  let path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) path = path.slice(nm + '/node_modules/'.length);
  else {
    const m = /\/(?:dist|src)\/(.*)$/.exec(path);
    if (m) path = `src/${m[1].replace(/\.js$/, '.ts')}`;
  }
  // lineNumber is 0-based in profiles; the location refers to the compiled file for our own code.
  return `${path}:${line + 1}`;
}

/** Where a frame's code comes from. */
export function originOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? 'v8' : 'native';
  if (url.startsWith('node:')) return 'node';
  const nm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return nm[1];
  return 'mysqlmq';
}

/** Self time per node id, in microseconds, from the samples (or hit counts if no samples). */
function selfMicros(profile: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  const { samples, timeDeltas } = profile;
  if (samples && timeDeltas && samples.length === timeDeltas.length) {
    // timeDeltas[i] is the gap before sample i; it is charged to the node of sample i, as DevTools does.
    for (let i = 0; i < samples.length; i++) {
      self.set(samples[i], (self.get(samples[i]) ?? 0) + Math.max(0, timeDeltas[i]));
    }
    return self;
  }
  const totalHits = profile.nodes.reduce((n, node) => n + (node.hitCount ?? 0), 0);
  const micros = profile.endTime - profile.startTime;
  for (const node of profile.nodes) {
    if (node.hitCount) self.set(node.id, (node.hitCount / totalHits) * micros);
  }
  return self;
}

/** Aggregated self time per function over one or more profiles, largest first, idle left out. */
export function topSelfTime(profiles: CpuProfile[], limit = 20): { busyMs: number; top: SelfTime[] } {
  const byKey = new Map<string, { name: string; location: string; origin: string; micros: number }>();
  let busy = 0;
  for (const profile of profiles) {
    const self = selfMicros(profile);
    for (const node of profile.nodes) {
      const micros = self.get(node.id);
      if (!micros) continue;
      const { functionName, url, lineNumber } = node.callFrame;
      if (IDLE.has(functionName)) continue;
      busy += micros;
      const name = functionName || '(anonymous)';
      const location = shortLocation(url, lineNumber);
      const key = `${name}\u0000${location}`;
      const entry = byKey.get(key);
      if (entry) entry.micros += micros;
      else byKey.set(key, { name, location, origin: originOf(url, functionName), micros });
    }
  }
  const top = [...byKey.values()]
    .sort((a, b) => b.micros - a.micros)
    .slice(0, limit)
    .map((e) => ({
      name: e.name,
      location: e.location,
      origin: e.origin,
      selfMs: e.micros / 1000,
      percent: busy ? (100 * e.micros) / busy : 0,
    }));
  return { busyMs: busy / 1000, top };
}

/** Busy self time per origin (our code, each package, node, v8), largest first. */
export function selfTimeByOrigin(
  profiles: CpuProfile[],
): { origin: string; selfMs: number; percent: number }[] {
  const byOrigin = new Map<string, number>();
  let busy = 0;
  for (const profile of profiles) {
    const self = selfMicros(profile);
    for (const node of profile.nodes) {
      const micros = self.get(node.id);
      if (!micros || IDLE.has(node.callFrame.functionName)) continue;
      busy += micros;
      const origin = originOf(node.callFrame.url, node.callFrame.functionName);
      byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + micros);
    }
  }
  return [...byOrigin]
    .sort((a, b) => b[1] - a[1])
    .map(([origin, micros]) => ({
      origin,
      selfMs: micros / 1000,
      percent: busy ? (100 * micros) / busy : 0,
    }));
}

/** Wall time the profile covers and the share of it the thread was not idle. */
export function busyShare(profile: CpuProfile): { wallMs: number; busyPercent: number } {
  const wall = profile.endTime - profile.startTime;
  const self = selfMicros(profile);
  let idle = 0;
  for (const node of profile.nodes) {
    if (IDLE.has(node.callFrame.functionName)) idle += self.get(node.id) ?? 0;
  }
  return { wallMs: wall / 1000, busyPercent: wall > 0 ? (100 * (wall - idle)) / wall : 0 };
}
