import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import { BackupNotFoundError, type BackupTarget, checkKey } from './target.js';

export interface S3TargetOptions {
  bucket: string;
  /** Key prefix inside the bucket (`backups/` or empty). */
  prefix?: string;
  /** An S3-compatible endpoint (`http://minio:9000`); omitted: AWS for `region`. */
  endpoint?: string;
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need. */
  forcePathStyle?: boolean;
  /** Omitted: the SDK's default chain (environment, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** Multipart uploads: 8 MiB parts, two in flight, so memory stays bounded whatever the size. */
const PART_SIZE = 8 * 1024 * 1024;
const UPLOAD_QUEUE = 2;

/**
 * Backups in an S3-compatible bucket through the AWS SDK. A stream of unknown length is uploaded
 * in parts (`@aws-sdk/lib-storage`): an upload that fails is aborted, so no partial object appears
 * under its key. Credentials live in the client only; `description` names bucket and endpoint.
 */
export class S3Target implements BackupTarget {
  readonly description: string;
  private readonly client: S3Client;
  private readonly prefix: string;

  constructor(private readonly options: S3TargetOptions) {
    this.prefix = options.prefix ? options.prefix.replace(/\/*$/, '/') : '';
    this.description = `s3://${options.bucket}/${this.prefix}${options.endpoint ? ` at ${options.endpoint}` : ''}`;
    this.client = new S3Client({
      region: options.region || 'us-east-1',
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      // A dead endpoint fails a backup in seconds instead of after the SDK's long retries, and a
      // stalled one does not hold the backup run forever.
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 120_000 },
    });
  }

  async put(key: string, body: Readable | string): Promise<number> {
    let bytes = 0;
    const source = typeof body === 'string' ? Readable.from([Buffer.from(body)]) : body;
    source.on('data', (c: Buffer) => (bytes += c.length));
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.options.bucket, Key: this.prefix + checkKey(key), Body: source },
      partSize: PART_SIZE,
      queueSize: UPLOAD_QUEUE,
      leavePartsOnError: false,
    });
    await upload.done();
    return bytes;
  }

  async get(key: string): Promise<Readable> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.options.bucket, Key: this.prefix + checkKey(key) }),
      );
      return res.Body as Readable;
    } catch (err) {
      if (err instanceof NoSuchKey) throw new BackupNotFoundError(key, this.description);
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.options.bucket,
          Prefix: this.prefix + checkKey(prefix),
          ContinuationToken: token,
        }),
      );
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key.slice(this.prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  async removeAll(prefix: string): Promise<void> {
    const keys = await this.list(prefix);
    for (let i = 0; i < keys.length; i += 1000) {
      await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.options.bucket,
          Delete: { Objects: keys.slice(i, i + 1000).map((k) => ({ Key: this.prefix + k })) },
        }),
      );
    }
  }

  close(): void {
    this.client.destroy();
  }
}
