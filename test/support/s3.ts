import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

/**
 * A real S3-compatible server (s3rver: the S3 REST API over a directory) for tests, with one
 * bucket. Its default credentials are `S3RVER` / `S3RVER`.
 */
export async function startS3(bucket: string, address = '127.0.0.1') {
  const dir = await mkdtemp(join(tmpdir(), 'mq-s3-'));
  const server = new S3rver({
    address,
    port: 0,
    directory: dir,
    silent: true,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const { port } = await server.run();
  return {
    endpoint: `http://${address}:${port}`,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
