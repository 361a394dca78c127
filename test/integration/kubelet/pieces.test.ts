import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Container } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { AddressPool } from '../../../tools/local/kubelet/addresses.js';
import {
  brokerArgs,
  brokerPort,
  localBrokerArgs,
  localExporterConfig,
  readinessCheck,
} from '../../../tools/local/kubelet/containers.js';
import { expandVars } from '../../../tools/local/kubelet/env.js';
import type { PodVolumes } from '../../../tools/local/kubelet/volumes.js';
import { LocalMariaDb } from '../../../tools/local/mariadbd.js';
import { renderMyCnf } from '../../../src/shard/mycnf.js';

describe('AddressPool', () => {
  it('hands out loopback addresses round-robin, never .0/.255 or 127.0.0.1', () => {
    const pool = new AddressPool('127.0.0.0/30');
    expect([pool.allocate(), pool.allocate()]).toEqual(['127.0.0.2', '127.0.0.3']); // .1 is 127.0.0.1
    expect(() => pool.allocate()).toThrow(/no free pod address/);
    const wide = new AddressPool('127.1');
    expect(wide.cidr).toBe('127.1.0.0/16');
    const a = wide.allocate();
    const b = wide.allocate();
    expect([a, b]).toEqual(['127.1.0.1', '127.1.0.2']);
    wide.release(a);
    expect(wide.allocate()).toBe('127.1.0.3'); // a freed address is reused last
    expect(wide.claim('127.1.0.2')).toBe(false);
    expect(wide.claim('127.1.7.7')).toBe(true);
    expect(wide.claim('127.2.0.1')).toBe(false);
    expect(new AddressPool('127.0.20').cidr).toBe('127.0.20.0/24');
    expect(() => new AddressPool('10.1')).toThrow(/127\.0\.0\.0\/8/);
  });
});

describe('mysqld-exporter containers', () => {
  it("listen on the pod IP and reach the MariaDB of their pod at its pod IP, not this machine's loopback", () => {
    const container: V1Container = {
      name: 'mysqld-exporter',
      command: ['/usr/bin/prometheus-mysqld-exporter', '--web.listen-address=:9104', '--collect.binlog_size'],
    };
    const env = { DATA_SOURCE_NAME: 'mq_monitor:s3cret@tcp(127.0.0.1:3306)/' };
    expect(localExporterConfig({ container, env, podIP: '127.9.0.7' })).toEqual({
      args: ['--web.listen-address=127.9.0.7:9104', '--collect.binlog_size'],
      env: { DATA_SOURCE_NAME: 'mq_monitor:s3cret@tcp(127.9.0.7:3306)/' },
    });
    expect(readinessCheck('mysqld-exporter', container)).toEqual({ kind: 'running' });
  });
});

describe('broker containers', () => {
  const container: V1Container = {
    name: 'broker',
    command: ['node', '/app/dist/broker/main.js', '--routing', '/etc/mysqlmq/routing/routing.json'],
    args: ['--host', '0.0.0.0', '--port', '9090', '--other=/etc/mysqlmq/routing/x'],
    volumeMounts: [{ name: 'routing', mountPath: '/etc/mysqlmq/routing' }],
  };
  const volumes = {
    mapArg: (_c: V1Container, arg: string) => arg.replace('/etc/mysqlmq/routing', '/local/routing'),
  } as unknown as PodVolumes;

  it('keeps the broker flags, with --host = pod IP and mounted paths mapped', () => {
    expect(brokerArgs(container)).toEqual([
      '--routing',
      '/etc/mysqlmq/routing/routing.json',
      '--host',
      '0.0.0.0',
      '--port',
      '9090',
      '--other=/etc/mysqlmq/routing/x',
    ]);
    const ctx = { container, volumes, podIP: '127.9.0.4' } as Parameters<typeof localBrokerArgs>[0];
    expect(localBrokerArgs(ctx)).toEqual([
      '--routing',
      '/local/routing/routing.json',
      '--host',
      '127.9.0.4',
      '--port',
      '9090',
      '--other=/local/routing/x',
    ]);
    expect(brokerPort(container)).toBe(9090);
    expect(localBrokerArgs({ ...ctx, container: { name: 'broker', args: ['--routing', 'r.json'] } })).toEqual(
      ['--routing', 'r.json', '--host', '127.9.0.4'],
    );
  });

  it('derives readiness from the probe, named ports included', () => {
    expect(
      readinessCheck('broker', {
        name: 'broker',
        ports: [{ name: 'http', containerPort: 8081 }],
        readinessProbe: { httpGet: { path: '/readyz', port: 'http' as unknown as number } },
      }),
    ).toEqual({ kind: 'http', port: 8081, path: '/readyz', timeoutMs: 1000 });
    expect(readinessCheck('broker', container)).toMatchObject({ kind: 'http', port: 9090, path: '/readyz' });
    expect(readinessCheck('mariadb', { name: 'mariadb' })).toMatchObject({ kind: 'tcp', port: 3306 });
    // spec.brokers.tls: probed over HTTPS, as a kubelet does (without checking the certificate).
    expect(
      readinessCheck('broker', {
        name: 'broker',
        readinessProbe: { httpGet: { path: '/readyz', port: 8443, scheme: 'HTTPS' } },
      }),
    ).toEqual({ kind: 'http', port: 8443, path: '/readyz', timeoutMs: 1000, https: true });
  });
});

describe('env', () => {
  it('expands $(VAR) as Kubernetes does', () => {
    expect(expandVars('a$(X)b$(MISSING)$$(X)', { X: '1' })).toBe('a1b$(MISSING)$(X)');
  });
});

describe('LocalMariaDb with a given my.cnf', () => {
  it('keeps the text but makes address, port and paths local', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mq-cnf-'));
    try {
      const db = await LocalMariaDb.spawn({
        dir,
        dataDir: join(dir, 'volume'),
        host: '127.0.0.9',
        port: 1, // nothing listens: only the files matter here
        admin: { user: 'root', password: "p'w" },
        myCnf: renderMyCnf({ serverId: 7, bindAddress: '0.0.0.0', port: 3306 }),
      });
      await db.kill();
      const cnf = await readFile(join(dir, 'my.cnf'), 'utf8');
      expect(cnf).toContain('server_id = 7');
      expect(cnf).toContain('read_only = ON');
      expect(cnf).not.toContain('0.0.0.0');
      expect(cnf).not.toMatch(/^port = 3306$/m);
      expect(cnf).toMatch(/bind_address = 127\.0\.0\.9\nport = 1\ndatadir = .*volume\n/);
      expect(await readFile(join(dir, 'init.sql'), 'utf8')).toContain("IDENTIFIED BY 'p''w'");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
