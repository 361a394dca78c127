import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

/** Runs kubectl (against `kubeconfig` when given); resolves with stdout, rejects with its stderr. */
export async function kubectl(
  kubeconfig: string | undefined,
  args: string[],
  input?: string,
): Promise<string> {
  const p = spawn('kubectl', [...(kubeconfig ? ['--kubeconfig', kubeconfig] : []), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  p.stdin.end(input ?? '');
  const code = await new Promise<number | null>((resolve, reject) => {
    p.on('error', reject);
    p.on('close', resolve);
  });
  if (code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${code}): ${err.trim()}`);
  return out;
}

/** The reasons of the Events about the object `name` in `namespace`, one per Event. */
export async function eventReasons(
  run: (args: string[]) => Promise<string>,
  namespace: string,
  name: string,
): Promise<string[]> {
  const out = await run([
    'get',
    'events',
    '-n',
    namespace,
    '--field-selector',
    `involvedObject.name=${name}`,
    '-o',
    'jsonpath={range .items[*]}{.reason}{"\\n"}{end}',
  ]);
  return out.split('\n').filter(Boolean);
}

/** A TCP port nobody listens on at `host` right now (the kernel picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
