import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, normalize, sep } from 'node:path';
import type { CoreV1Api, V1Container, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { isNotFound } from './api.js';
import { ContainerConfigError, type ObjectLookup, configMapData, secretData } from './env.js';

/** Where a PVC's data lives: `<stateDir>/pvc/<namespace>/<claimName>`, kept until the PVC is deleted. */
export function pvcDir(stateDir: string, namespace: string, claimName: string): string {
  return join(stateDir, 'pvc', namespace, claimName);
}

/** Marks which PVC (by uid) a data directory belongs to, next to it. */
export const pvcUidFile = (dir: string) => `${dir}.uid`;

/** A relative path inside a volume, refusing `..` escapes. */
function inside(root: string, relative: string): string {
  const p = normalize(join(root, relative));
  if (p !== root && !p.startsWith(root + sep))
    throw new ContainerConfigError(`path "${relative}" escapes its volume`);
  return p;
}

interface ProjectedFiles {
  /** File path inside the volume -> content. */
  files: Map<string, Buffer>;
  mode: number;
}

/**
 * A pod's volumes as local directories: ConfigMap and Secret volumes are written as files under
 * `<podDir>/volumes/<volume>/` (and rewritten when the object changes, atomically, as the kubelet's
 * symlink swap does), emptyDirs are empty directories, PVCs are `pvcDir(...)`, hostPaths are
 * themselves. Container paths are then mapped to local ones by mount.
 */
export class PodVolumes {
  private readonly written = new Map<string, Map<string, Buffer>>();
  private readonly local = new Map<string, string>();

  constructor(
    private readonly pod: V1Pod,
    private readonly podDir: string,
    private readonly stateDir: string,
    private readonly lookup: ObjectLookup,
    private readonly core: CoreV1Api,
  ) {}

  private get namespace(): string {
    return this.pod.metadata?.namespace ?? 'default';
  }

  private volumes(): V1Volume[] {
    return this.pod.spec?.volumes ?? [];
  }

  /** Prepares every volume; a missing non-optional ConfigMap/Secret/PVC is a ContainerConfigError. */
  async materialise(): Promise<void> {
    for (const v of this.volumes()) {
      if (v.configMap || v.secret) {
        await this.sync(v);
      } else if (v.emptyDir) {
        const dir = join(this.podDir, 'volumes', v.name);
        await mkdir(dir, { recursive: true });
        this.local.set(v.name, dir);
      } else if (v.persistentVolumeClaim) {
        this.local.set(v.name, await this.claimDir(v.persistentVolumeClaim.claimName));
      } else if (v.hostPath) {
        this.local.set(v.name, v.hostPath.path);
      }
      // Other kinds (projected, downwardAPI, ...) stay unmapped.
    }
  }

  /** Re-reads ConfigMap and Secret volumes and rewrites changed files; true if any changed. */
  async refresh(): Promise<boolean> {
    let changed = false;
    for (const v of this.volumes()) {
      if (v.configMap || v.secret) changed = (await this.sync(v).catch(() => false)) || changed;
    }
    return changed;
  }

  private async claimDir(claimName: string): Promise<string> {
    let uid: string | undefined;
    try {
      const pvc = await this.core.readNamespacedPersistentVolumeClaim({
        name: claimName,
        namespace: this.namespace,
      });
      uid = pvc.metadata?.uid;
      // As the scheduler refuses a claim being deleted: the pod waits for the claim made again.
      if (pvc.metadata?.deletionTimestamp)
        throw new ContainerConfigError(`persistentvolumeclaim "${claimName}" is being deleted`);
    } catch (err) {
      if (err instanceof ContainerConfigError) throw err;
      if (isNotFound(err)) throw new ContainerConfigError(`persistentvolumeclaim "${claimName}" not found`);
      throw err;
    }
    const dir = pvcDir(this.stateDir, this.namespace, claimName);
    const owner = await readFile(pvcUidFile(dir), 'utf8').catch(() => undefined);
    if (owner !== undefined && owner !== uid) {
      // Left by an earlier PVC of the same name that was deleted while nobody watched.
      await rm(dir, { recursive: true, force: true });
    }
    await mkdir(dir, { recursive: true });
    if (owner !== uid && uid) await writeFile(pvcUidFile(dir), uid);
    return dir;
  }

  private async project(v: V1Volume): Promise<ProjectedFiles | undefined> {
    const ns = this.namespace;
    let data: Record<string, Buffer> | undefined;
    let optional = false;
    let what: string;
    if (v.configMap) {
      what = `configmap "${v.configMap.name}"`;
      optional = v.configMap.optional ?? false;
      const cm = await this.lookup.configMap(ns, v.configMap.name ?? '');
      data = cm && configMapData(cm);
    } else {
      what = `secret "${v.secret!.secretName}"`;
      optional = v.secret!.optional ?? false;
      const s = await this.lookup.secret(ns, v.secret!.secretName ?? '');
      data = s && secretData(s);
    }
    const items = v.configMap?.items ?? v.secret?.items;
    const mode = v.configMap ? 0o644 : 0o600;
    if (!data) {
      if (optional) return { files: new Map(), mode };
      throw new ContainerConfigError(`${what} not found`);
    }
    const files = new Map<string, Buffer>();
    if (items) {
      for (const item of items) {
        const value = data[item.key];
        if (value === undefined) {
          if (optional) continue;
          throw new ContainerConfigError(`key "${item.key}" not found in ${what}`);
        }
        files.set(item.path, value);
      }
    } else {
      for (const [k, value] of Object.entries(data)) files.set(k, value);
    }
    return { files, mode };
  }

  /**
   * One sync at a time: the pod's probe tick refreshes volumes while `materialise` may still run
   * (an init container runs meanwhile), and two writers of one file would mix up contents.
   */
  private syncing: Promise<unknown> = Promise.resolve();

  private sync(v: V1Volume): Promise<boolean> {
    const next = this.syncing.then(() => this.syncNow(v));
    this.syncing = next.catch(() => undefined);
    return next;
  }

  private async syncNow(v: V1Volume): Promise<boolean> {
    const projected = await this.project(v);
    if (!projected) return false;
    const root = join(this.podDir, 'volumes', v.name);
    await mkdir(root, { recursive: true });
    this.local.set(v.name, root);
    const before = this.written.get(v.name) ?? new Map<string, Buffer>();
    let changed = false;
    for (const [path, content] of projected.files) {
      const previous = before.get(path);
      if (previous && previous.equals(content)) continue;
      const file = inside(root, path);
      await mkdir(dirname(file), { recursive: true });
      // One temporary name per file and call: two syncs of a volume may overlap (start and a
      // ConfigMap change), and a shared name let one file's content be renamed onto another.
      const tmp = join(dirname(file), `..${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
      await writeFile(tmp, content, { mode: projected.mode });
      await rename(tmp, file);
      changed = true;
    }
    for (const path of before.keys()) {
      if (!projected.files.has(path)) {
        await rm(inside(root, path), { force: true });
        changed = true;
      }
    }
    this.written.set(v.name, projected.files);
    return changed;
  }

  /** The local path a mount shows (`subPath` included), if its volume has one. */
  mountPath(mount: V1VolumeMount): string | undefined {
    const root = this.local.get(mount.name);
    if (root === undefined) return undefined;
    return mount.subPath ? inside(root, mount.subPath) : root;
  }

  /** Maps a path as the container sees it to the local one, by the longest matching mount. */
  mapPath(container: V1Container, path: string): string {
    let best: { length: number; local: string } | undefined;
    for (const m of container.volumeMounts ?? []) {
      const mp = m.mountPath.replace(/\/+$/, '');
      if (path !== mp && !path.startsWith(mp + '/')) continue;
      const local = this.mountPath(m);
      if (local === undefined || (best && best.length >= mp.length)) continue;
      best = { length: mp.length, local: local + path.slice(mp.length) };
    }
    return best?.local ?? path;
  }

  /** Maps every argument that is, or ends with (`--flag=/path`), a path under a mount. */
  mapArg(container: V1Container, arg: string): string {
    const eq = arg.indexOf('=');
    if (arg.startsWith('/')) return this.mapPath(container, arg);
    if (arg.startsWith('-') && eq > 0 && arg[eq + 1] === '/') {
      return arg.slice(0, eq + 1) + this.mapPath(container, arg.slice(eq + 1));
    }
    return arg;
  }
}
