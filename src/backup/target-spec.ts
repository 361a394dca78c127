import { DirectoryTarget } from './directory.js';
import { S3Target } from './s3.js';
import type { BackupTarget } from './target.js';

/** `spec.backup.target` of a MessageQueueCluster: exactly one of `directory` and `s3`. */
export interface BackupTargetSpec {
  directory?: {
    path: string;
    /**
     * The Pod volume source holding `path` (e.g. a ReadWriteMany PVC or NFS). A restoring
     * instance's seed step mounts it at `path`, read-only; the operator's own Pod gets it from the
     * chart (`extraVolumes`). Absent: `path` is a directory every one of them already sees.
     */
    volume?: Record<string, unknown>;
  };
  s3?: {
    bucket: string;
    prefix?: string;
    endpoint?: string;
    region?: string;
    forcePathStyle?: boolean;
    /** A Secret in the cluster's namespace with keys `accessKeyId` and `secretAccessKey`. */
    credentialsSecret?: string;
  };
}

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The target a spec names; S3 credentials come from its Secret (or the SDK's default chain). */
export function targetOf(spec: BackupTargetSpec, credentials?: S3Credentials): BackupTarget {
  if (spec.directory) return new DirectoryTarget(spec.directory.path);
  if (spec.s3) {
    const { bucket, prefix, endpoint, region, forcePathStyle } = spec.s3;
    return new S3Target({ bucket, prefix, endpoint, region, forcePathStyle, credentials });
  }
  throw new Error('spec.backup.target names neither directory nor s3');
}

/** The keys of a credentials Secret's `data` (base64), or why they are unusable. Pure. */
export function s3CredentialsFromSecret(
  name: string,
  data: Record<string, string> | undefined,
): S3Credentials | string {
  const value = (key: string) => (data?.[key] ? Buffer.from(data[key], 'base64').toString('utf8') : '');
  const accessKeyId = value('accessKeyId');
  const secretAccessKey = value('secretAccessKey');
  if (!accessKeyId || !secretAccessKey)
    return `Secret ${name} (spec.backup.target.s3.credentialsSecret) needs the keys accessKeyId and secretAccessKey`;
  return { accessKeyId, secretAccessKey };
}
