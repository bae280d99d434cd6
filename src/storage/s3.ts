// S3 backend (AWS S3 and compatible stores: Ceph RGW, MinIO...). See docs/design.md "S3" for the
// layout and the guarantees, and docs/cli.md for the URL forms and environment variables.
//
//   s3:https://host[:port]/bucket[/prefix]   custom endpoint, path-style addressing
//   s3:http://127.0.0.1:port/bucket[/prefix] (plain HTTP: for loopback and test endpoints)
//   s3:bucket[/prefix]  (or s3://bucket/prefix)  AWS, virtual-hosted addressing, region from the
//                                                standard chain (AWS_REGION, profile config)
//
// Credentials come only from the AWS SDK's default chain (environment, shared config and
// credentials files, AWS_PROFILE, SSO, instance roles). A URL carrying user:password@ is refused.
//
// Objects are `<prefix>/<kind>/<name>`, data packs fanned out as `<prefix>/data/<id[0:2]>/<id>`,
// the config is `<prefix>/config` (the same tree as the local backend). This class does not retry:
// it classifies each failure (BulwarkError.retryable) and the RetryStorage wrapper chained in
// open.ts retries whole operations. The one exception is multipart uploads, whose parts are retried
// one by one with the same policy so that a failed part does not resend the parts before it.
import type * as S3 from '@aws-sdk/client-s3';
import type { BucketLocationConstraint, S3Client, S3ClientConfig, ServerSideEncryption, StorageClass } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { BulwarkError } from '../errors.js';
import { lazy } from '../lazy.js';
import { DEFAULT_RETRY, retryCall, type RetryPolicy } from './retry.js';
import { countHttp } from './stats.js';
import { describe, OBJECT_KINDS, type Handle, type ObjectInfo, type ObjectKind, type Storage } from './storage.js';

export interface S3Location {
  /** Origin of a custom endpoint (`https://host:port`); undefined for AWS. */
  endpoint: string | undefined;
  bucket: string;
  /** Key prefix without leading or trailing slash ('' for the bucket root). */
  prefix: string;
}

export interface S3Options {
  /** Storage class per kind; kinds not listed use the bucket's default (STANDARD). */
  storageClass: Partial<Record<ObjectKind, string>>;
  sse: 'AES256' | 'aws:kms' | undefined;
  kmsKeyId: string | undefined;
  /** Idle timeout of one request (no byte moved for this long), ms. */
  timeoutMs: number;
  /** Connection establishment timeout, ms. */
  connectTimeoutMs: number;
  /** Maximum sockets to the endpoint. */
  connections: number;
  /** Objects larger than this go up in multipart uploads of parts this size (bytes). */
  partSize: number;
  /**
   * Object Lock retention applied to every object written except locks (BULWARK_S3_OBJECT_LOCK,
   * e.g. "governance:30" or "compliance:90" days); needs a bucket with Object Lock enabled, which
   * `create` makes when the bucket does not exist yet.
   */
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number } | undefined;
  /** 'auto': conditional PUT (If-None-Match: *), falling back to HEAD-first if refused; 'off': HEAD-first. */
  conditionalWrite: 'auto' | 'off';
  region: string | undefined;
  retry: RetryPolicy;
}

const sdk = lazy<typeof S3>('@aws-sdk/client-s3');

const BUCKET_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/;
const NAME_RE = /^[0-9a-f]{8,64}$/;
const MiB = 1024 * 1024;

function usage(msg: string, hint: string, subject?: string): BulwarkError {
  return new BulwarkError('USAGE', msg, subject === undefined ? { hint } : { hint, subject });
}

/** Parses what follows `s3:` in a repository location. Never echoes credentials found in it. */
export function parseS3Url(rest: string): S3Location {
  const forms = 'write s3:https://host:port/bucket/prefix, s3:http://127.0.0.1:port/bucket/prefix or s3:bucket/prefix';
  if (/^https?:\/\//i.test(rest)) {
    let u: URL;
    try {
      u = new URL(rest);
    } catch {
      throw usage('the S3 repository location is not a valid URL', forms);
    }
    if (u.username !== '' || u.password !== '') {
      throw usage(
        `S3 repository locations must not contain credentials (${u.protocol}//***@${u.host}${u.pathname})`,
        'remove user:password@ from the URL; credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials',
      );
    }
    if (u.search !== '' || u.hash !== '') throw usage(`the S3 repository location s3:${u.origin}${u.pathname} has a query or fragment`, forms);
    const parts = decodeURIComponent(u.pathname).split('/').filter((p) => p !== '');
    const bucket = parts.shift();
    if (bucket === undefined) throw usage(`the S3 repository location s3:${u.origin}/ names no bucket`, forms);
    if (!BUCKET_RE.test(bucket)) throw usage(`invalid S3 bucket name ${JSON.stringify(bucket)}`, forms, bucket);
    return { endpoint: u.origin, bucket, prefix: parts.join('/') };
  }
  const r = rest.startsWith('//') ? rest.slice(2) : rest;
  const firstSlash = r.indexOf('/');
  const authority = firstSlash < 0 ? r : r.slice(0, firstSlash);
  if (authority.includes('@')) {
    throw usage(
      'S3 repository locations must not contain credentials (***@...)',
      'remove the credentials from the location; they come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials',
    );
  }
  const parts = r.split('/').filter((p) => p !== '');
  const bucket = parts.shift();
  if (bucket === undefined) throw usage('the S3 repository location names no bucket', forms);
  if (!BUCKET_RE.test(bucket)) throw usage(`invalid S3 bucket name ${JSON.stringify(bucket)}`, forms, bucket);
  return { endpoint: undefined, bucket, prefix: parts.join('/') };
}

function envInt(env: NodeJS.ProcessEnv, name: string, def: number, min: number): number {
  const v = env[name];
  if (v === undefined || v.trim() === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw usage(`${name}=${JSON.stringify(v)} is not a number ≥ ${min}`, `unset ${name} or give a number`);
  return n;
}

/** Reads the S3 options from BULWARK_S3_* variables (documented in docs/cli.md). */
function parseObjectLock(raw: string | undefined): S3Options['objectLock'] {
  if (raw === undefined || raw === '') return undefined;
  const m = /^(governance|compliance):(\d+)d?$/i.exec(raw.trim());
  if (m === null || Number(m[2]) < 1) {
    throw usage(`BULWARK_S3_OBJECT_LOCK=${JSON.stringify(raw)} is not MODE:DAYS`, 'use e.g. BULWARK_S3_OBJECT_LOCK=governance:30 or compliance:90');
  }
  return { mode: m[1]!.toUpperCase() as 'GOVERNANCE' | 'COMPLIANCE', days: Number(m[2]) };
}

export function s3OptionsFromEnv(env: NodeJS.ProcessEnv = process.env): S3Options {
  const storageClass: Partial<Record<ObjectKind, string>> = {};
  const all = env['BULWARK_S3_STORAGE_CLASS'];
  for (const k of OBJECT_KINDS) {
    const v = env[`BULWARK_S3_STORAGE_CLASS_${k.toUpperCase()}`] ?? all;
    if (v !== undefined && v !== '') storageClass[k] = v;
  }
  const sseRaw = env['BULWARK_S3_SSE'];
  let sse: S3Options['sse'];
  if (sseRaw !== undefined && sseRaw !== '') {
    const s = sseRaw.toLowerCase();
    if (s === 'aes256' || s === 'sse-s3') sse = 'AES256';
    else if (s === 'aws:kms' || s === 'kms' || s === 'sse-kms') sse = 'aws:kms';
    else throw usage(`BULWARK_S3_SSE=${JSON.stringify(sseRaw)} is not AES256 or aws:kms`, 'use BULWARK_S3_SSE=AES256 (SSE-S3) or aws:kms (with BULWARK_S3_SSE_KMS_KEY_ID)');
  }
  const kms = env['BULWARK_S3_SSE_KMS_KEY_ID'];
  const kmsKeyId = kms === undefined || kms === '' ? undefined : kms;
  if (kmsKeyId !== undefined && sse === undefined) sse = 'aws:kms';
  if (kmsKeyId !== undefined && sse !== 'aws:kms') throw usage('BULWARK_S3_SSE_KMS_KEY_ID needs BULWARK_S3_SSE=aws:kms', 'unset one of them');
  const cw = (env['BULWARK_S3_CONDITIONAL_WRITE'] ?? 'auto').toLowerCase();
  if (cw !== 'auto' && cw !== 'off') throw usage(`BULWARK_S3_CONDITIONAL_WRITE=${JSON.stringify(cw)} is not auto or off`, 'use auto (default) or off');
  const timeoutMs = envInt(env, 'BULWARK_S3_TIMEOUT', 120, 0.1) * 1000;
  const region = env['AWS_REGION'] ?? env['AWS_DEFAULT_REGION'];
  return {
    storageClass,
    sse,
    kmsKeyId,
    timeoutMs,
    connectTimeoutMs: Math.min(timeoutMs, 30_000),
    connections: Math.floor(envInt(env, 'BULWARK_S3_CONNECTIONS', 5, 1)),
    // Packs (16 MiB) go up in one conditional PUT: fewer requests, and write-once is enforced by
    // the store (multipart completion ignores If-None-Match on some stores).
    partSize: Math.floor(envInt(env, 'BULWARK_S3_PART_SIZE', 32, 5) * MiB),
    objectLock: parseObjectLock(env['BULWARK_S3_OBJECT_LOCK']),
    conditionalWrite: cw,
    region: region === undefined || region === '' ? undefined : region,
    retry: DEFAULT_RETRY,
  };
}

interface AwsErrorLike {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  Region?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string> };
}

const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'Throttling',
  'ThrottlingException',
  'RequestThrottled',
  'OperationAborted',
  'ConditionalRequestConflict',
  'AbortError',
]);
const RETRYABLE_SYS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);
const UNREACHABLE_SYS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const AUTH_NAMES = new Set([
  'AccessDenied',
  'Forbidden',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'CredentialsProviderError',
  'AllAccessDisabled',
  'AccountProblem',
]);

function errorFields(err: unknown): { name: string; status: number | undefined; sys: string | undefined; message: string; e: AwsErrorLike } {
  const e = (typeof err === 'object' && err !== null ? err : {}) as AwsErrorLike;
  let sys = typeof e.code === 'string' ? e.code : undefined;
  // Network errors may be wrapped (AggregateError, cause chains).
  let c: unknown = (err as { cause?: unknown } | null)?.cause;
  for (let i = 0; sys === undefined && c !== undefined && c !== null && i < 4; i++) {
    const cc = (c as { code?: unknown }).code;
    if (typeof cc === 'string') sys = cc;
    c = (c as { cause?: unknown }).cause;
  }
  const name = (typeof e.Code === 'string' ? e.Code : undefined) ?? (typeof e.name === 'string' ? e.name : 'Error');
  return { name, status: e.$metadata?.httpStatusCode, sys, message: typeof e.message === 'string' ? e.message : String(err), e };
}

export class S3Storage implements Storage {
  readonly location: string;
  /** Restore reads this much per GET (a 2 MiB local slice would cost four times the requests). */
  readonly readSize = 8 * MiB;
  private readonly client: S3Client;
  private readonly root: string;
  private readonly endpointName: string;
  private conditional: boolean;
  private tmp: string | undefined;
  /** Whether the endpoint has answered at least once: only then is a refused connection worth retrying. */
  private reached = false;

  constructor(
    readonly loc: S3Location,
    readonly opts: S3Options = s3OptionsFromEnv(),
  ) {
    this.location = loc.endpoint !== undefined ? `s3:${loc.endpoint}/${loc.bucket}${loc.prefix === '' ? '' : `/${loc.prefix}`}` : `s3:${loc.bucket}${loc.prefix === '' ? '' : `/${loc.prefix}`}`;
    this.root = loc.prefix === '' ? '' : `${loc.prefix}/`;
    this.endpointName = loc.endpoint ?? 'AWS S3';
    this.conditional = opts.conditionalWrite === 'auto';
    // The SDK warns on Node 20 that its releases after January 2027 need Node 22; the version in
    // package-lock.json supports Node 20, which package.json's engines promises.
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
    const agent = { keepAlive: true, maxSockets: opts.connections };
    const cfg: S3ClientConfig = {
      // The RetryStorage wrapper (open.ts) is the single retry layer.
      maxAttempts: 1,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: opts.connectTimeoutMs,
        // An idle timeout: a request fails when no byte has moved for this long (a big upload on
        // a slow link may take longer in all, and must).
        socketTimeout: opts.timeoutMs,
        httpAgent: agent,
        httpsAgent: agent,
      },
    };
    if (loc.endpoint !== undefined) {
      cfg.endpoint = loc.endpoint;
      cfg.forcePathStyle = true;
      cfg.region = opts.region ?? 'us-east-1';
    } else if (opts.region !== undefined) {
      cfg.region = opts.region;
    }
    this.client = new (sdk().S3Client)(cfg);
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        countHttp(context.commandName ?? 'unknown');
        const out = await next(args);
        this.reached = true;
        return out;
      },
      { step: 'finalizeRequest', name: 'bulwarkCountRequests', priority: 'low' },
    );
  }

  private key(h: Handle): string {
    if (h.kind === 'config') return `${this.root}config`;
    if (!NAME_RE.test(h.name)) {
      throw new BulwarkError('INTERNAL', `invalid object name ${JSON.stringify(h.name)}`, { subject: describe(h) });
    }
    if (h.kind === 'data') return `${this.root}data/${h.name.slice(0, 2)}/${h.name}`;
    return `${this.root}${h.kind}/${h.name}`;
  }

  /** Translates an SDK or network failure into the engine's error, classified for the retry wrapper. */
  mapError(err: unknown, op: string, subject: string): BulwarkError {
    if (err instanceof BulwarkError) return err;
    const { name, status, sys, message, e } = errorFields(err);
    if (status !== undefined) this.reached = true;
    const where = `bucket ${JSON.stringify(this.loc.bucket)} at ${this.endpointName}`;
    const base = { subject, cause: err };
    if (name === 'NoSuchBucket') {
      return new BulwarkError('REPO_NOT_FOUND', `the S3 bucket ${JSON.stringify(this.loc.bucket)} does not exist at ${this.endpointName}`, {
        ...base,
        subject: this.loc.bucket,
        hint: 'check the bucket name in the repository location, or run `bulwark init` to create it',
      });
    }
    if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && op !== 'list' && op !== 'create')) {
      return new BulwarkError('OBJECT_NOT_FOUND', `${subject} not found in ${this.location}`, base);
    }
    if (name === 'PreconditionFailed' || status === 412) {
      return new BulwarkError('OBJECT_EXISTS', `${subject} already exists in ${this.location}`, base);
    }
    if (
      name === 'AuthorizationHeaderMalformed' ||
      name === 'PermanentRedirect' ||
      name === 'IllegalLocationConstraintException' ||
      name === 'InvalidLocationConstraint' ||
      status === 301 ||
      /region is missing|invalid region/i.test(message)
    ) {
      const expected = e.Region ?? e.$response?.headers?.['x-amz-bucket-region'];
      const configured = this.opts.region ?? (this.loc.endpoint !== undefined ? 'us-east-1' : 'none');
      return new BulwarkError(
        'STORAGE_REGION',
        `wrong or missing region for ${where}: configured ${configured}${expected !== undefined ? `, the bucket is in ${expected}` : ''} (${name})`,
        { ...base, subject: this.loc.bucket, hint: expected !== undefined ? `set AWS_REGION=${expected}` : 'set AWS_REGION (or the region of your AWS profile)' },
      );
    }
    if (AUTH_NAMES.has(name) || status === 403 || /could not load credentials/i.test(message)) {
      const why = name === 'Error' || name === 'Unknown' || name === 'Forbidden' ? `HTTP ${status ?? '?'}` : name;
      return new BulwarkError('STORAGE_AUTH', `access to ${where} was refused (${why})`, {
        ...base,
        subject: this.endpointName,
        hint: 'check the AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials) and the bucket policy',
      });
    }
    if (sys !== undefined && UNREACHABLE_SYS.has(sys)) {
      return new BulwarkError('STORAGE_UNREACHABLE', `cannot reach the S3 endpoint ${this.endpointName} (${sys})`, {
        ...base,
        subject: this.endpointName,
        // A wrong host or port fails at once; an endpoint that answered before is retried.
        retryable: sys !== 'ENOTFOUND' && this.reached,
        hint: 'check the host and port in the repository location and the network',
      });
    }
    const retryable =
      RETRYABLE_NAMES.has(name) ||
      (sys !== undefined && RETRYABLE_SYS.has(sys)) ||
      (status !== undefined && (status >= 500 || status === 408 || status === 429)) ||
      /socket hang up|aborted|premature close|timed? ?out|ECONNRESET/i.test(message);
    return new BulwarkError('STORAGE_IO', `cannot ${op} ${subject} in ${this.location}: ${name}${status !== undefined ? ` (HTTP ${status})` : ''}: ${message}`, {
      ...base,
      retryable,
    });
  }

  async create(): Promise<void> {
    try {
      let exists = true;
      try {
        await this.client.send(new (sdk().HeadBucketCommand)({ Bucket: this.loc.bucket }));
      } catch (err) {
        const { name, status } = errorFields(err);
        if (name !== 'NotFound' && name !== 'NoSuchBucket' && status !== 404) throw err;
        exists = false;
      }
      if (!exists) {
        try {
          const region = await this.client.config.region();
          const needsConstraint = this.loc.endpoint === undefined && region !== 'us-east-1';
          await this.client.send(
            new (sdk().CreateBucketCommand)({
              Bucket: this.loc.bucket,
              ...(this.opts.objectLock !== undefined ? { ObjectLockEnabledForBucket: true } : {}),
              ...(needsConstraint ? { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } } : {}),
            }),
          );
        } catch (err) {
          const { name } = errorFields(err);
          if (name === 'BucketAlreadyExists') {
            throw new BulwarkError('USAGE', `the S3 bucket name ${JSON.stringify(this.loc.bucket)} is taken by another account`, {
              subject: this.loc.bucket,
              hint: 'choose another bucket name',
            });
          }
          if (name !== 'BucketAlreadyOwnedByYou') throw err;
        }
      }
      let hasConfig = false;
      for await (const _ of this.list('config')) hasConfig = true;
      if (hasConfig) {
        throw new BulwarkError('REPO_EXISTS', `a repository already exists at ${this.location}`, {
          subject: this.location,
          hint: 'choose another bucket or prefix, or use the existing repository',
        });
      }
    } catch (err) {
      throw this.mapError(err, 'create', this.location);
    }
  }

  async *list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    const prefix = kind === 'config' ? `${this.root}config` : `${this.root}${kind}/`;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new (sdk().ListObjectsV2Command)({ Bucket: this.loc.bucket, Prefix: prefix, ...(token !== undefined ? { ContinuationToken: token } : {}) }),
        );
      } catch (err) {
        throw this.mapError(err, 'list', kind);
      }
      for (const o of page.Contents ?? []) {
        const k = o.Key;
        if (k === undefined) continue;
        const size = o.Size ?? 0;
        if (kind === 'config') {
          if (k === prefix) yield { name: 'config', size };
          continue;
        }
        const rel = k.slice(prefix.length);
        if (kind === 'data') {
          const m = /^([0-9a-f]{2})\/([0-9a-f]{8,64})$/.exec(rel);
          if (m !== null && m[2]?.startsWith(m[1] ?? '')) yield { name: m[2], size };
        } else if (NAME_RE.test(rel)) {
          yield { name: rel, size };
        }
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private async head(h: Handle): Promise<number> {
    const res = await this.client.send(new (sdk().HeadObjectCommand)({ Bucket: this.loc.bucket, Key: this.key(h) }));
    return res.ContentLength ?? 0;
  }

  async stat(h: Handle): Promise<ObjectInfo> {
    try {
      return { name: h.name, size: await this.head(h) };
    } catch (err) {
      throw this.mapError(err, 'stat', describe(h));
    }
  }

  async read(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    const subject = describe(h);
    try {
      if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
        throw shortRead(h, offset, length ?? 0, 0);
      }
      if (length === 0) {
        const size = await this.head(h);
        if (offset > size) throw shortRead(h, offset, 0, 0);
        return Buffer.alloc(0);
      }
      const range = offset === 0 && length === undefined ? undefined : `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
      let res;
      try {
        res = await this.client.send(new (sdk().GetObjectCommand)({ Bucket: this.loc.bucket, Key: this.key(h), ...(range !== undefined ? { Range: range } : {}) }));
      } catch (err) {
        const { name, status } = errorFields(err);
        if (name !== 'InvalidRange' && status !== 416) throw err;
        // The range starts at or past the end. Reading from exactly the end is an empty read.
        const size = await this.head(h);
        if (length === undefined && offset === size) return Buffer.alloc(0);
        throw shortRead(h, offset, length ?? 0, 0);
      }
      const body = res.Body === undefined ? new Uint8Array(0) : await res.Body.transformToByteArray();
      let buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
      if (res.ContentLength !== undefined && res.ContentLength !== buf.length) {
        throw new BulwarkError('STORAGE_IO', `${subject}: response body of ${buf.length} bytes, announced ${res.ContentLength}`, { subject, retryable: true });
      }
      if (range !== undefined && res.ContentRange === undefined && offset > 0) buf = buf.subarray(offset); // range ignored by the server
      if (length !== undefined) {
        if (buf.length < length) throw shortRead(h, offset, length, buf.length);
        if (buf.length > length) buf = buf.subarray(0, length);
      }
      return buf;
    } catch (err) {
      throw this.mapError(err, 'read', subject);
    }
  }

  /**
   * A ranged read straight into `into` (restore's reusable slice buffers): the response streams
   * into place instead of being gathered and concatenated into a fresh buffer per read, which cost
   * a copy and, at 8 MiB per read, kept the garbage collector busy.
   */
  async readInto(h: Handle, offset: number, length: number, into: Uint8Array): Promise<void> {
    const subject = describe(h);
    try {
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || length > into.length) {
        throw shortRead(h, offset, length, 0);
      }
      if (length === 0) {
        await this.read(h, offset, 0);
        return;
      }
      let res;
      try {
        res = await this.client.send(new (sdk().GetObjectCommand)({ Bucket: this.loc.bucket, Key: this.key(h), Range: `bytes=${offset}-${offset + length - 1}` }));
      } catch (err) {
        const { name, status } = errorFields(err);
        if (name !== 'InvalidRange' && status !== 416) throw err;
        throw shortRead(h, offset, length, 0);
      }
      if (res.ContentRange === undefined && offset > 0) {
        // The server ignored the range: drop this response and fall back to the general path.
        (res.Body as unknown as { destroy?: () => void } | undefined)?.destroy?.();
        into.set(await this.read(h, offset, length));
        return;
      }
      let got = 0;
      const body = res.Body as unknown as NodeJS.ReadableStream | undefined;
      if (body !== undefined) {
        // 'data' events rather than async iteration: one promise per chunk of a few KiB cost more
        // than the copy itself.
        await new Promise<void>((resolve, reject) => {
          body.on('data', (chunk: Uint8Array) => {
            const n = Math.min(chunk.length, length - got);
            if (n > 0) into.set(n === chunk.length ? chunk : chunk.subarray(0, n), got);
            got += n;
          });
          body.once('end', resolve);
          body.once('error', reject);
        });
      }
      if (res.ContentLength !== undefined && res.ContentLength !== got && got < length) {
        throw new BulwarkError('STORAGE_IO', `${subject}: response body of ${got} bytes, announced ${res.ContentLength}`, { subject, retryable: true });
      }
      if (got < length) throw shortRead(h, offset, length, got);
    } catch (err) {
      throw this.mapError(err, 'read', subject);
    }
  }

  private putParams(h: Handle): {
    StorageClass?: StorageClass;
    ServerSideEncryption?: ServerSideEncryption;
    SSEKMSKeyId?: string;
    ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE';
    ObjectLockRetainUntilDate?: Date;
  } {
    const out: ReturnType<S3Storage['putParams']> = {};
    // Lock objects must come and go; everything else is retained by the store itself.
    if (this.opts.objectLock !== undefined && h.kind !== 'locks') {
      out.ObjectLockMode = this.opts.objectLock.mode;
      out.ObjectLockRetainUntilDate = new Date(Date.now() + this.opts.objectLock.days * 86_400_000);
    }
    const sc = this.opts.storageClass[h.kind];
    if (sc !== undefined) out.StorageClass = sc as StorageClass;
    if (this.opts.sse !== undefined) out.ServerSideEncryption = this.opts.sse;
    if (this.opts.kmsKeyId !== undefined) out.SSEKMSKeyId = this.opts.kmsKeyId;
    return out;
  }

  private async refuseIfExists(h: Handle): Promise<void> {
    try {
      await this.head(h);
    } catch (err) {
      if (this.mapError(err, 'write', describe(h)).code === 'OBJECT_NOT_FOUND') return;
      throw err;
    }
    throw new BulwarkError('OBJECT_EXISTS', `${describe(h)} already exists in ${this.location}`, { subject: describe(h) });
  }

  private async putSingle(h: Handle, body: Buffer): Promise<void> {
    const params = {
      Bucket: this.loc.bucket,
      Key: this.key(h),
      Body: body,
      ContentLength: body.length,
      ContentMD5: createHash('md5').update(body).digest('base64'),
      ...this.putParams(h),
    };
    if (this.conditional) {
      try {
        await this.client.send(new (sdk().PutObjectCommand)({ ...params, IfNoneMatch: '*' }));
        return;
      } catch (err) {
        const { name, status } = errorFields(err);
        if (name !== 'NotImplemented' && status !== 501) throw err;
        // The store does not do conditional writes: check first from now on (docs/design.md).
        this.conditional = false;
      }
    }
    await this.refuseIfExists(h);
    await this.client.send(new (sdk().PutObjectCommand)(params));
  }

  /** Runs one request of a multipart upload with the retry policy (see the header comment). */
  private retried<T>(h: Handle, what: string, fn: () => Promise<T>): Promise<T> {
    return retryCall(fn, this.opts.retry, (err) => this.mapError(err, 'write', `${describe(h)} (${what})`), 'write');
  }

  /** Multipart upload of `size` bytes produced part by part; aborted on any failure. */
  private async putMultipart(h: Handle, size: number, part: (offset: number, len: number) => Promise<Buffer>): Promise<void> {
    await this.retried(h, 'existence check', () => this.refuseIfExists(h));
    const Key = this.key(h);
    const Bucket = this.loc.bucket;
    // A lost reply to CreateMultipartUpload leaves an invisible upload that nothing completes;
    // the bucket lifecycle rule AbortIncompleteMultipartUpload (docs/design.md) removes it.
    const created = await this.retried(h, 'start upload', () => this.client.send(new (sdk().CreateMultipartUploadCommand)({ Bucket, Key, ...this.putParams(h) })));
    const UploadId = created.UploadId;
    if (UploadId === undefined) throw new BulwarkError('STORAGE_IO', `${describe(h)}: the store returned no upload id`, { retryable: true });
    try {
      const parts: Array<{ ETag: string; PartNumber: number }> = [];
      for (let off = 0, n = 1; off < size; off += this.opts.partSize, n++) {
        const len = Math.min(this.opts.partSize, size - off);
        const body = await part(off, len);
        const md5 = createHash('md5').update(body).digest('base64');
        const res = await this.retried(h, `part ${n}`, () =>
          this.client.send(new (sdk().UploadPartCommand)({ Bucket, Key, UploadId, PartNumber: n, Body: body, ContentLength: len, ContentMD5: md5 })),
        );
        if (res.ETag === undefined) throw new BulwarkError('STORAGE_IO', `${describe(h)}: part ${n} has no ETag`, { retryable: true });
        parts.push({ ETag: res.ETag, PartNumber: n });
      }
      let tries = 0;
      await this.retried(h, 'complete upload', async () => {
        tries++;
        try {
          await this.client.send(
            new (sdk().CompleteMultipartUploadCommand)({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts }, ...(this.conditional ? { IfNoneMatch: '*' } : {}) }),
          );
        } catch (err) {
          // A retry after a lost reply finds the upload gone: it completed if the object is there
          // with our size (names are content hashes, so the size check is only a sanity check).
          const { name } = errorFields(err);
          if (tries > 1 && (name === 'NoSuchUpload' || name === 'PreconditionFailed')) {
            const got = await this.head(h).catch(() => -1);
            if (got === size) return;
          }
          throw err;
        }
      });
    } catch (err) {
      // Nothing was published: an incomplete upload is invisible to GET and LIST. Abort it so its
      // parts do not linger.
      await this.client.send(new (sdk().AbortMultipartUploadCommand)({ Bucket, Key, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  async write(h: Handle, data: Uint8Array): Promise<void> {
    try {
      const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      if (body.length <= this.opts.partSize) await this.putSingle(h, body);
      else await this.putMultipart(h, body.length, async (off, len) => body.subarray(off, off + len));
    } catch (err) {
      throw this.mapError(err, 'write', describe(h));
    }
  }

  /** A private directory under the OS temp dir, removed by close() or at process exit. */
  tempDir(): string {
    if (this.tmp === undefined) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-s3-'));
      this.tmp = dir;
      process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    }
    return this.tmp;
  }

  async adopt(h: Handle, file: string): Promise<void> {
    try {
      const size = (await fsp.stat(file)).size;
      if (size <= this.opts.partSize) {
        await this.putSingle(h, await fsp.readFile(file));
      } else {
        const fh = await fsp.open(file, 'r');
        try {
          await this.putMultipart(h, size, async (off, len) => {
            const buf = Buffer.allocUnsafe(len);
            let got = 0;
            while (got < len) {
              const { bytesRead } = await fh.read(buf, got, len - got, off + got);
              if (bytesRead === 0) throw new BulwarkError('STORAGE_IO', `${file} shrank while being uploaded`, { subject: file });
              got += bytesRead;
            }
            return buf;
          });
        } finally {
          await fh.close();
        }
      }
    } catch (err) {
      throw this.mapError(err, 'write', describe(h));
    }
    await fsp.rm(file, { force: true });
  }

  async delete(h: Handle): Promise<void> {
    try {
      // S3 deletes of missing keys succeed; the contract wants OBJECT_NOT_FOUND.
      await this.head(h);
      await this.client.send(new (sdk().DeleteObjectCommand)({ Bucket: this.loc.bucket, Key: this.key(h) }));
    } catch (err) {
      throw this.mapError(err, 'delete', describe(h));
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
    if (this.tmp !== undefined) {
      const t = this.tmp;
      this.tmp = undefined;
      await fsp.rm(t, { recursive: true, force: true });
    }
  }
}

function shortRead(h: Handle, offset: number, want: number, got: number): BulwarkError {
  return new BulwarkError('SHORT_READ', `${describe(h)}: wanted ${want} bytes at offset ${offset}, got ${got}`, {
    subject: describe(h),
    hint: 'the object is truncated; run `bulwark check` to see what is affected',
  });
}
