import { createReadStream } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { join } from 'node:path';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { type BackupSource, gtidAtBinlogPosition, streamBackup } from '../shard/clone.js';
import { BINLOG_PATH, CLONE_GTID_PATH, CLONE_PATH } from './contract.js';
import { authorized } from './token.js';

export interface AgentServerOptions {
  source: BackupSource;
  token: string;
  log: Logger;
}

/**
 * The agent's HTTP server, next to a MariaDB instance's data directory: `GET /v1/clone` streams a
 * hot physical backup (xbstream) of the local server to an instance being rebuilt, and
 * `GET /v1/clone/gtid?file=&position=` turns the binlog position the copy is consistent at into the
 * GTID its replication starts after; `GET /v1/binlog?file=` streams a closed binlog file to the
 * operator's binlog archiving; `GET /healthz`.
 * One copy at a time: a second request gets 409 (a copy costs disk reads and the source's redo log
 * must be kept while it runs). A copy that fails half way ends the response abruptly, so the
 * receiver can never mistake it for a complete one.
 */
export function agentServer(options: AgentServerOptions): Server {
  let busy = false;
  const { log } = options;
  return createServer((req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    // Only binlog file names (`mysql-bin.000042`): nothing else of the data directory is served.
    const streamBinlog = (file: string) => {
      if (!/^[\w-]+\.\d{6,}$/.test(file))
        return json(400, { code: 'bad_file', message: `"${file}" is not a binlog file name` });
      const stream = createReadStream(join(options.source.dataDir, file));
      stream.once('error', (err: NodeJS.ErrnoException) => {
        if (res.headersSent) return res.destroy();
        json(err.code === 'ENOENT' ? 404 : 500, {
          code: err.code === 'ENOENT' ? 'no_such_binlog' : 'read_failed',
          message: err.code === 'ENOENT' ? `no binlog ${file} (purged?)` : errorMessage(err),
        });
      });
      stream.once('open', () => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        stream.pipe(res);
      });
    };
    const url = new URL(req.url ?? '/', 'http://agent');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/healthz') return json(200, { ok: true });
    if (path !== CLONE_PATH && path !== CLONE_GTID_PATH && path !== BINLOG_PATH)
      return json(404, { code: 'not_found', message: `no route ${path}` });
    if (req.method !== 'GET') return json(405, { code: 'method_not_allowed', message: 'use GET' });
    if (!authorized(req.headers.authorization, options.token))
      return json(401, { code: 'unauthorized', message: 'a valid agent token is required' });
    if (path === CLONE_GTID_PATH) {
      const file = url.searchParams.get('file') ?? '';
      const position = Number(url.searchParams.get('position'));
      if (!/^[\w.-]+$/.test(file) || !Number.isInteger(position) || position < 0)
        return json(400, { code: 'bad_position', message: 'file and position of a binlog are required' });
      gtidAtBinlogPosition(options.source.endpoint, options.source.admin, { file, position }).then(
        (gtid) => json(200, { gtid }),
        (err) => json(409, { code: 'position_unknown', message: errorMessage(err) }),
      );
      return;
    }
    if (path === BINLOG_PATH) return streamBinlog(url.searchParams.get('file') ?? '');
    if (busy) return json(409, { code: 'busy', message: 'a copy is already being streamed; retry later' });
    busy = true;
    const started = Date.now();
    const peer = req.socket.remoteAddress;
    log.info('clone started', { peer });
    void (async () => {
      try {
        const backup = await streamBackup(options.source);
        res.on('close', () => {
          if (!res.writableFinished) backup.abort();
        });
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        let bytes = 0;
        backup.stream.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (!res.write(chunk)) {
            backup.stream.pause();
            res.once('drain', () => backup.stream.resume());
          }
        });
        await new Promise<void>((resolve) => backup.stream.once('end', resolve));
        await backup.done;
        res.end();
        log.info('clone streamed', { peer, bytes, ms: Date.now() - started });
      } catch (err) {
        log.warn('clone failed', { peer, error: errorMessage(err) });
        if (res.headersSent) res.destroy();
        else json(500, { code: 'backup_failed', message: errorMessage(err) });
      } finally {
        busy = false;
      }
    })();
  });
}
