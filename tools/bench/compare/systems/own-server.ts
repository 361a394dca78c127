import type { ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';

/** A server the benchmark started itself because none was running, and its temporary directory. */
export interface OwnServer {
  child: ChildProcess;
  dir: string;
}

/** Stops the server (SIGTERM, then waits for it to exit) and removes its directory. */
export async function stopOwnServer({ child, dir }: OwnServer): Promise<void> {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
}
