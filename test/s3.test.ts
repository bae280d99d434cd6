// S3 end to end against a real S3 (Ceph RGW on loopback, test/ceph.ts), with test/fault-proxy.ts
// in front of it to prove the resilience wrappers: a backup through a proxy that spoils 20% of
// requests completes and checks clean; interrupted uploads leave no partial object; a wrong
// endpoint, bucket, region or credentials each give their own error naming what is wrong.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand, GetObjectRetentionCommand, ListMultipartUploadsCommand, ListObjectVersionsCommand, S3Client } from '@aws-sdk/client-s3';
import { BulwarkError } from '../src/errors.js';
import { RetryStorage } from '../src/storage/retry.js';
import { parseS3Url, S3Storage, s3OptionsFromEnv } from '../src/storage/s3.js';
import { resetStorageStats, storageStats } from '../src/storage/stats.js';
import type { Storage } from '../src/storage/storage.js';
import { bucketUrl, cephUnavailable, newBucket, startCeph, stopCeph, type Ceph } from './ceph.js';
import { FaultProxy } from './fault-proxy.js';
import { compareTrees, jsonError, makeTree, rmrf, runCli, runOk, tmpdir } from './helpers.js';
import { handle, listAll, rejectsWith } from './storage-conformance.js';

const PASSWORD = 'correct horse battery staple';
const missing = cephUnavailable();

/** An S3Storage (no wrappers) on `url`, with `env` overriding the BULWARK_S3_* settings. */
function rawS3(url: string, env: NodeJS.ProcessEnv = {}): S3Storage {
  return new S3Storage(parseS3Url(url.replace(/^s3:/, '')), s3OptionsFromEnv({ ...process.env, ...env }));
}

async function incompleteUploads(ceph: Ceph, bucket: string): Promise<number> {
  const c = new S3Client({ endpoint: ceph.endpoint, region: ceph.region, forcePathStyle: true });
  try {
    const r = await c.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    return (r.Uploads ?? []).length;
  } finally {
    c.destroy();
  }
}

const bucketOf = (url: string): string => parseS3Url(url.replace(/^s3:/, '')).bucket;

describe('S3 on Ceph RGW', { skip: missing ?? false }, () => {
  let ceph: Ceph;
  let proxy: FaultProxy;
  let root: string;
  before(async () => {
    ceph = await startCeph();
    proxy = await new FaultProxy(ceph.endpoint).start();
    root = tmpdir('bulwark-s3-');
  });
  after(async () => {
    await proxy?.stop();
    if (root !== undefined) rmrf(root);
    stopCeph();
  });

  it('backup through a proxy failing 20% of requests completes, check --read-data passes, restore matches', async () => {
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    makeTree(src, { owners: false, fifo: false });
    const repo = bucketUrl(ceph, { endpoint: proxy.endpoint, tag: 'faults' });
    // Stalled requests must time out quickly; the retry budget is the default.
    const env = { BULWARK_REPO: repo, BULWARK_PASSWORD: PASSWORD, BULWARK_S3_TIMEOUT: '2' };
    proxy.setPlan({ rate: 0.2, faults: ['drop', 'lose-reply', 'slowdown', 'error500', 'stall', 'cut'], stallMs: 30_000, seed: 20 });
    const before = proxy.requests;
    await runOk(['init'], env);
    await runOk(['backup', src], env);
    await runOk(['check', '--read-data'], env);
    const target = path.join(root, 'restore');
    await runOk(['restore', 'latest', '--target', target], env);
    compareTrees(src, path.join(target, src), { owners: false });
    const seen = proxy.requests - before;
    proxy.setPlan({});
    assert.ok(proxy.totalFaults >= seen * 0.1, `only ${proxy.totalFaults} faults in ${seen} requests`);
    console.log(`# fault proxy: ${proxy.totalFaults} faults in ${seen} requests ${JSON.stringify(proxy.faultsFired)}`);
    // And the repository is clean without the proxy too.
    const r = await runOk(['check', '--read-data', '--json'], { ...env, BULWARK_REPO: repo.replace(proxy.endpoint, ceph.endpoint) });
    assert.ok(r.stdout.length > 0);
  });

  it('an upload cut mid-way leaves no partial object and no pending multipart upload', async () => {
    const url = bucketUrl(ceph, { endpoint: proxy.endpoint, tag: 'cut' });
    const s = new RetryStorage(rawS3(url, { BULWARK_RETRIES: '0', BULWARK_S3_PART_SIZE: '8' }), { attempts: 1, baseMs: 1, capMs: 1 });
    await s.create();
    // Every request carrying more than 1 MiB of body is cut halfway: single PUTs and parts alike.
    proxy.setPlan({ decide: (r) => (r.contentLength > 1024 * 1024 ? 'cut' : undefined) });
    try {
      const small = handle('data');
      await assert.rejects(s.write(small, randomBytes(3 * 1024 * 1024)), BulwarkError);
      const big = handle('data');
      await assert.rejects(s.write(big, randomBytes(20 * 1024 * 1024)), BulwarkError);
      const file = path.join(s.tempDir?.() ?? root, 'pack-cut');
      fs.writeFileSync(file, randomBytes(17 * 1024 * 1024));
      const adopted = handle('data');
      await assert.rejects(s.adopt?.(adopted, file) ?? Promise.reject(new Error('no adopt')), BulwarkError);
      proxy.setPlan({});
      assert.deepEqual(await listAll(s, 'data'), []);
      for (const h of [small, big, adopted]) await rejectsWith(s.stat(h), 'OBJECT_NOT_FOUND');
      assert.equal(await incompleteUploads(ceph, bucketOf(url)), 0, 'multipart uploads were aborted');
    } finally {
      proxy.setPlan({});
      await s.close();
    }
  });

  it('with retries, cut parts and lost replies are retried and the object arrives whole, once', async () => {
    const url = bucketUrl(ceph, { endpoint: proxy.endpoint, tag: 'retry' });
    resetStorageStats();
    const opts = s3OptionsFromEnv({ ...process.env, BULWARK_S3_PART_SIZE: '8' });
    opts.retry = { attempts: 6, baseMs: 5, capMs: 50 };
    const s = new RetryStorage(new S3Storage(parseS3Url(url.replace(/^s3:/, '')), opts), opts.retry);
    await s.create();
    let cuts = 0;
    let lost = 0;
    proxy.setPlan({
      decide: (r) => {
        if (r.contentLength > 1024 * 1024 && cuts < 2) return (cuts++, 'cut');
        // Lose the reply of the completion and of the small PUT once: the server did the work.
        if (r.method === 'POST' && r.url.includes('uploadId') && lost === 0) return (lost++, 'lose-reply');
        if (r.method === 'PUT' && !r.url.includes('uploadId') && r.contentLength > 0 && r.contentLength < 1024 && lost === 1) return (lost++, 'lose-reply');
        return undefined;
      },
    });
    try {
      const big = handle('data');
      const data = randomBytes(20 * 1024 * 1024);
      await s.write(big, data);
      const small = handle('snapshots');
      await s.write(small, Buffer.from('snapshot bytes'));
      proxy.setPlan({});
      assert.equal(cuts, 2);
      assert.equal(lost, 2);
      assert.ok((await s.read(big)).equals(data));
      assert.deepEqual(await s.read(small), Buffer.from('snapshot bytes'));
      assert.equal(await incompleteUploads(ceph, bucketOf(url)), 0);
      const st = storageStats();
      assert.ok(st.ops.write.retries >= 3, JSON.stringify(st.ops.write));
      assert.equal(st.ops.write.failures, 0);
      assert.ok((st.http['UploadPartCommand'] ?? 0) >= 5, JSON.stringify(st.http));
    } finally {
      proxy.setPlan({});
      await s.close();
    }
  });

  it('racing multipart uploads of one content-addressed name leave one whole object', async () => {
    // Multipart completion is not conditional on RGW 16.2 (If-None-Match is ignored there), so
    // both racers may succeed; names are content hashes, so both carry the same bytes.
    const s = rawS3(bucketUrl(ceph, { tag: 'race' }), { BULWARK_S3_PART_SIZE: '8' });
    await s.create();
    try {
      const h = handle('data');
      const data = randomBytes(18 * 1024 * 1024);
      const results = await Promise.allSettled([s.write(h, data), s.write(h, data), s.write(h, data)]);
      assert.ok(results.some((r) => r.status === 'fulfilled'));
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(r.reason instanceof BulwarkError && r.reason.code === 'OBJECT_EXISTS', String(r.reason));
      }
      assert.ok((await s.read(h)).equals(data));
      assert.deepEqual(await listAll(s, 'data'), [{ name: h.name, size: data.length }]);
      await rejectsWith(s.write(h, data), 'OBJECT_EXISTS');
      assert.equal(await incompleteUploads(ceph, s.loc.bucket), 0);
    } finally {
      await s.close();
    }
  });

  it('503 SlowDown and stalls past the timeout are retried; 403 and 404 are not', async () => {
    const url = bucketUrl(ceph, { endpoint: proxy.endpoint, tag: 'classify' });
    const opts = s3OptionsFromEnv({ ...process.env, BULWARK_S3_TIMEOUT: '1' });
    opts.retry = { attempts: 5, baseMs: 5, capMs: 50 };
    const s: Storage = new RetryStorage(new S3Storage(parseS3Url(url.replace(/^s3:/, '')), opts), opts.retry);
    await s.create();
    try {
      const h = handle('index');
      await s.write(h, Buffer.from('index'));
      resetStorageStats();
      const n0 = proxy.requests;
      proxy.setPlan({ nth: new Map([[n0 + 1, 'slowdown'], [n0 + 2, 'stall'], [n0 + 3, 'error500']]), stallMs: 10_000 });
      const t0 = Date.now();
      assert.deepEqual(await s.read(h), Buffer.from('index'));
      assert.ok(Date.now() - t0 >= 900, 'the stall lasted until the timeout');
      assert.deepEqual(storageStats().ops.read, { calls: 1, attempts: 4, retries: 3, failures: 0, bytes: 5 });
      resetStorageStats();
      proxy.setPlan({ respond: () => ({ status: 403, body: '<Error><Code>AccessDenied</Code><Message>denied</Message></Error>' }) });
      await rejectsWith(s.read(h), 'STORAGE_AUTH');
      proxy.setPlan({});
      await rejectsWith(s.read(handle('index')), 'OBJECT_NOT_FOUND');
      assert.deepEqual(storageStats().ops.read, { calls: 2, attempts: 2, retries: 0, failures: 2, bytes: 0 });
    } finally {
      proxy.setPlan({});
      await s.close();
    }
  });

  it('storage classes and server-side encryption settings reach the store', async () => {
    const url = bucketUrl(ceph, { tag: 'class' });
    // RGW knows STANDARD only unless placement targets are configured; an unknown class is refused,
    // which proves the header is sent.
    const s = rawS3(url, { BULWARK_S3_STORAGE_CLASS_DATA: 'NO_SUCH_CLASS' });
    await s.create();
    try {
      await s.write(handle('index'), Buffer.from('index objects keep the default class'));
      await assert.rejects(s.write(handle('data'), Buffer.from('pack')), (err: unknown) => err instanceof BulwarkError && /InvalidStorageClass|HTTP 400/.test(err.message));
    } finally {
      await s.close();
    }
    assert.throws(() => s3OptionsFromEnv({ BULWARK_S3_SSE: 'rot13' }), BulwarkError);
    assert.deepEqual(
      (({ sse, kmsKeyId }) => ({ sse, kmsKeyId }))(s3OptionsFromEnv({ BULWARK_S3_SSE_KMS_KEY_ID: 'arn:aws:kms:eu-west-1:1:key/x' })),
      { sse: 'aws:kms', kmsKeyId: 'arn:aws:kms:eu-west-1:1:key/x' },
    );
    assert.deepEqual(s3OptionsFromEnv({ BULWARK_S3_STORAGE_CLASS: 'STANDARD', BULWARK_S3_STORAGE_CLASS_DATA: 'STANDARD_IA' }).storageClass, {
      config: 'STANDARD',
      keys: 'STANDARD',
      data: 'STANDARD_IA',
      index: 'STANDARD',
      snapshots: 'STANDARD',
      locks: 'STANDARD',
    });
  });

  it('Object Lock: written objects are retained by the store (a version cannot be deleted); locks are not', async () => {
    const url = bucketUrl(ceph, { tag: 'lock' });
    const s = rawS3(url, { BULWARK_S3_OBJECT_LOCK: 'governance:1' });
    await s.create();
    const bucket = bucketOf(url);
    const c = new S3Client({ endpoint: ceph.endpoint, region: ceph.region, forcePathStyle: true });
    try {
      await s.write(handle('data'), Buffer.from('a pack that must survive'));
      await s.write(handle('locks'), Buffer.from('a lock'));
      const listed = await c.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      const pack = (listed.Versions ?? []).find((v) => v.Key?.includes('/data/'));
      assert.ok(pack?.VersionId !== undefined, 'the bucket keeps versions (Object Lock enabled at creation)');
      const ret = await c.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: pack.Key!, VersionId: pack.VersionId }));
      assert.equal(ret.Retention?.Mode, 'GOVERNANCE');
      assert.ok((ret.Retention?.RetainUntilDate?.getTime() ?? 0) > Date.now() + 23 * 3_600_000);
      await assert.rejects(c.send(new DeleteObjectCommand({ Bucket: bucket, Key: pack.Key!, VersionId: pack.VersionId })), /AccessDenied|locked|retention/i);
      const lock = (listed.Versions ?? []).find((v) => v.Key?.includes('/locks/'));
      await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: lock!.Key!, VersionId: lock!.VersionId }));
      assert.throws(() => s3OptionsFromEnv({ BULWARK_S3_OBJECT_LOCK: 'forever' }), BulwarkError);
    } finally {
      // Governance-mode versions can be removed by a caller who asks to bypass: clean up the bucket.
      const all = await c.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      for (const v of [...(all.Versions ?? []), ...(all.DeleteMarkers ?? [])]) {
        await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.Key!, VersionId: v.VersionId, BypassGovernanceRetention: true })).catch(() => undefined);
      }
      c.destroy();
      await s.close();
    }
  });

  describe('clear errors through the CLI', () => {
    const cliEnv = (repo: string, extra: Record<string, string> = {}): Record<string, string | undefined> => ({ BULWARK_REPO: repo, BULWARK_PASSWORD: PASSWORD, ...extra });

    it('a wrong endpoint (nothing listening) is STORAGE_UNREACHABLE naming it, without a long retry', async () => {
      const closed = await new FaultProxy('http://127.0.0.1:1').start();
      const port = closed.port;
      await closed.stop();
      const t0 = Date.now();
      const r = await runCli(['--json', 'snapshots'], cliEnv(`s3:http://127.0.0.1:${port}/bucket/repo`));
      const e = jsonError(r);
      assert.equal(e.code, 'STORAGE_UNREACHABLE', e.message);
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
    });

    it('an unknown host is STORAGE_UNREACHABLE naming it', async () => {
      const r = await runCli(['--json', 'snapshots'], cliEnv('s3:http://no-such-host.invalid:9000/bucket/repo'));
      const e = jsonError(r);
      assert.equal(e.code, 'STORAGE_UNREACHABLE', e.message);
      assert.match(e.message, /no-such-host\.invalid/);
    });

    it('a missing bucket is REPO_NOT_FOUND naming the bucket (exit 10)', async () => {
      const bucket = newBucket('missing');
      const r = await runCli(['--json', 'snapshots'], cliEnv(`s3:${ceph.endpoint}/${bucket}/repo`));
      assert.equal(r.code, 10);
      const e = jsonError(r);
      assert.equal(e.code, 'REPO_NOT_FOUND');
      assert.ok(e.message.includes(bucket), e.message);
    });

    it('a wrong secret or an unknown access key is STORAGE_AUTH naming the endpoint, never the secret', async () => {
      const repo = bucketUrl(ceph, { tag: 'auth' });
      await runOk(['init'], cliEnv(repo));
      for (const extra of [{ AWS_SECRET_ACCESS_KEY: 'wrong-secret-1234567890' }, { AWS_ACCESS_KEY_ID: 'NOSUCHKEYID', AWS_SECRET_ACCESS_KEY: 'wrong-secret-1234567890' }]) {
        const r = await runCli(['--json', 'snapshots'], cliEnv(repo, extra));
        const e = jsonError(r);
        assert.equal(e.code, 'STORAGE_AUTH', e.message);
        assert.ok(e.message.includes(ceph.endpoint), e.message);
        assert.ok(!r.stderr.includes('wrong-secret') && !r.stdout.includes('wrong-secret'));
        assert.ok(!r.stderr.includes(ceph.secretAccessKey));
      }
    });

    it('missing credentials are STORAGE_AUTH', async () => {
      const r = await runCli(['--json', 'snapshots'], {
        ...cliEnv(bucketUrl(ceph, { tag: 'nocred' })),
        AWS_ACCESS_KEY_ID: undefined,
        AWS_SECRET_ACCESS_KEY: undefined,
        AWS_PROFILE: 'bulwark-no-such-profile',
        AWS_CONFIG_FILE: path.join(root, 'none'),
        AWS_SHARED_CREDENTIALS_FILE: path.join(root, 'none'),
        AWS_EC2_METADATA_DISABLED: 'true',
      });
      const e = jsonError(r);
      assert.equal(e.code, 'STORAGE_AUTH', e.message);
    });

    it('a wrong region is STORAGE_REGION naming it: on init (RGW) and as AWS answers it', async () => {
      const r = await runCli(['--json', 'init'], cliEnv(bucketUrl(ceph, { tag: 'region' }), { AWS_REGION: 'eu-west-1' }));
      const e = jsonError(r);
      assert.equal(e.code, 'STORAGE_REGION', e.message);
      assert.match(e.message, /eu-west-1/);
      // AWS answers a request signed for the wrong region with AuthorizationHeaderMalformed and
      // the bucket's region; RGW accepts any region, so the proxy answers as AWS would.
      proxy.setPlan({
        respond: () => ({
          status: 400,
          body: '<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region \'us-east-1\' is wrong; expecting \'eu-central-1\'</Message><Region>eu-central-1</Region></Error>',
        }),
      });
      try {
        const r2 = await runCli(['--json', 'snapshots'], cliEnv(bucketUrl(ceph, { endpoint: proxy.endpoint, tag: 'region' })));
        const e2 = jsonError(r2);
        assert.equal(e2.code, 'STORAGE_REGION', e2.message);
        assert.match(e2.message, /us-east-1/);
        assert.match(e2.message, /eu-central-1/);
      } finally {
        proxy.setPlan({});
      }
    });

    it('credentials in the location are refused without echoing them', async () => {
      const r = await runCli(['--json', 'snapshots'], cliEnv(`s3:http://KEYID:s3cr3t-in-url@127.0.0.1:9/b/p`));
      assert.equal(r.code, 2);
      const e = jsonError(r);
      assert.equal(e.code, 'USAGE');
      assert.ok(!r.stderr.includes('s3cr3t-in-url') && !r.stderr.includes('KEYID'), r.stderr);
    });

    it('init on an existing repository is REPO_EXISTS; init on an existing empty bucket works', async () => {
      const repo = bucketUrl(ceph, { tag: 'exists' });
      await runOk(['init'], cliEnv(repo));
      const r = await runCli(['--json', 'init'], cliEnv(repo));
      assert.equal(jsonError(r).code, 'REPO_EXISTS');
      // Another prefix in the same (now existing) bucket is another repository.
      await runOk(['init'], cliEnv(repo.replace(/\/repo$/, '/second')));
    });
  });
});
